"""The facility's CrossGuard policy pack.

`rules.py` declares every rule and the `pulumi_policy` objects built from them; the rule logic
lives in pure functions over plain dicts of resource inputs (`exposure`, `identity`, `leaks`,
`workloads`, `capacity`), so the Pulumi CLI (`__main__.py`) and the offline runner (`offline`)
judge a plan the same way.

The Pulumi CLI runs this directory with itself first on `sys.path`: no module here may share a
name with a standard-library module (hence `leaks`, not `secrets`)."""
