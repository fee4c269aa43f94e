// Launch a Binder link with BinderHub's own JS client, @jupyterhub/binderhub-client,
// unchanged: node binderhub_client_launch.mjs <client module> <build endpoint URL> <provider/spec>
// Prints every event as one JSON line; exits when the stream ends with ready or failed.
globalThis.window = globalThis; // fetch-event-source uses window.setTimeout
const [clientModule, buildEndpoint, providerSpec] = process.argv.slice(2);
const { BinderRepository } = await import(clientModule);
const repo = new BinderRepository(providerSpec, new URL(buildEndpoint), {});
for await (const data of repo.fetch()) {
  console.log(JSON.stringify(data));
  if (data.phase === "ready" || data.phase === "failed") break;
}
repo.close();
