"""Who may launch what (authenticated mode): access rules over specs, and the git forge's own word.

``check_launch`` is asked on every build request and every launch, before
anything is built or started; an image that exists already is no way in.
"""
