"""jira-sync-client: a notification subscriber for the jira-sync assignment service
that resumes after its cursor when the stream breaks.

The gRPC stubs are generated from the repository's proto/ directory
(``python clients/python/generate.py OUT_DIR``) and must be importable
(``assignment.v1.notifications_pb2`` and friends on ``sys.path``).
"""

from .subscriber import Durable, OutOfRange, Refused, Subscriber

__all__ = ["Durable", "OutOfRange", "Refused", "Subscriber"]
