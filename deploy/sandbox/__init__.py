"""rosterd sandbox: loopback fakes of Personio, MOCO, the platform (SCIM + delegation API)
and Slack. Run `python3 deploy/sandbox/sandbox.py serve`; see README.md."""
