"""What the integration tests and the benchmarks share, each written once, one module per concern.

- ``gitserver``   fixture repositories served over git's HTTP protocol on 127.0.0.1
- ``images``      building through the real pipeline, running a command in an image, the build table
- ``streams``     reading a ``/build`` event stream (SSE) to its end, with a deadline
- ``kernel``      running a cell over the Jupyter websocket; starting a busy cell
- ``registry``    Debian's docker-registry on 127.0.0.1 with its storage in a temp dir
- ``stack``       binderlite's services started and stopped as ``binderlite up`` does; launches on them
- ``containers``  the ``bltest-`` names, and removing what tests and stacks leave behind
- ``net``         free ports; waiting until an HTTP endpoint answers
- ``parallel``    one call run by many threads at once (concurrent builds and launches)
- ``diagnostics`` the container and service logs printed when an integration test fails
- ``browser``     ``binderlite up`` on test ports, and headless Chromium that stays on 127.0.0.1
- ``netns``       a host "outside" this machine: a network namespace on a veth pair

Nothing here asserts what a test is about: helpers fail only when they cannot
do their job (a build that did not finish, a stream that did not end).
"""
