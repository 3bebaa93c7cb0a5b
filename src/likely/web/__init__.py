"""The dashboard: FastAPI pages and their JSON twins over one workspace.

Pages and API call the same :class:`~likely.workspace.Workspace` functions as the CLI; nothing
here computes over customer data itself (the run's summary file has what pages show).
"""

from likely.web.app import create_app

__all__ = ["create_app"]
