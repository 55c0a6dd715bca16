"""Where the API readiness gate's dynamic provider used to live. Pulumi pickles a dynamic
provider into the stack's state by reference (module path and class name), so stacks deployed
before the move still name `components.readiness._ApiReadyProvider`: `pulumi refresh` and
`destroy` of those stacks import it from here. The gate itself is `components.infra.readiness`."""

from .infra.readiness import _ApiReadyProvider

__all__ = ["_ApiReadyProvider"]
