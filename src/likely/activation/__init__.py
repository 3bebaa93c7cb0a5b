"""Activation: send a segment's members to where campaigns run, and log every send.

Destinations (``folder``, ``webhook``, ``table``) are named configs in the catalog; credentials
stay in environment variables the config names. ``activate`` delivers one segment's members in
``full``/``replace`` or ``delta`` mode (entered and left since the last successful activation to
the same destination) and records the outcome in the ``activations`` log.
"""

from likely.activation.base import ActivationError
from likely.activation.destinations import (
    KINDS,
    MODES,
    Destination,
    add_destination,
    check_config,
    get_destination,
    list_destinations,
    parse_destination_file,
    remove_destination,
)
from likely.activation.log import (
    Activation,
    activate,
    activation_dir,
    get_activation,
    list_activations,
)

__all__ = ["KINDS", "MODES", "Activation", "ActivationError", "Destination", "activate",
           "activation_dir", "add_destination", "check_config", "get_activation",
           "get_destination", "list_activations", "list_destinations", "parse_destination_file",
           "remove_destination"]
