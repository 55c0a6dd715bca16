"""The facility's network: every flow it needs, declared once, and the NetworkPolicies that allow
those flows into the facility's namespaces and nothing else (the charts' own policies are off).
`afctl graph` draws the same declaration."""
