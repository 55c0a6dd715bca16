"""The stack's configuration as a whole: `FacilityConfig` assembled from the layers' sections
(`facility`), profile merging and validation (`loader`), secret sources (`pulumi_source`), the
error contract (`errors`) and the checks that span sections. Each layer's own models and checks
live in its package (`components/<layer>/config.py`, `checks.py`).

Nothing is imported here: the layers' models import `config.base` and `config.errors`, and
`FacilityConfig` imports the layers' models."""
