"""Story 1 with Python's grpcio, a client independent of the Rust code.

Creates a tenant in the assignment service, registers a Jira integration in the
tracker (against the jira-sim simulator), creates a Jira issue for two groups,
posts a signed assignee webhook, and reads the notification stream until both
groups' "assigned" notifications arrive.

Stubs are generated from proto/ by grpcio-tools into a directory on sys.path
(see .ci/clients.sh).
"""

import argparse
import hashlib
import hmac
import json
import pathlib
import sys
import threading
import urllib.request

import grpc

from assignment.v1 import directory_pb2, directory_pb2_grpc
from assignment.v1 import groups_pb2, groups_pb2_grpc
from assignment.v1 import notifications_pb2, notifications_pb2_grpc
from tracker.v1 import tracker_pb2, tracker_pb2_grpc

SECRET = "python-webhook-secret"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--tracker", required=True)
    parser.add_argument("--tracker-http", required=True)
    parser.add_argument("--jira", required=True)
    parser.add_argument("--fixtures", required=True)
    args = parser.parse_args()

    assignment = grpc.insecure_channel(args.assignment)
    tracker = grpc.insecure_channel(args.tracker)
    directory = directory_pb2_grpc.DirectoryServiceStub(assignment)
    groups = groups_pb2_grpc.GroupServiceStub(assignment)
    notifications = notifications_pb2_grpc.NotificationServiceStub(assignment)
    tracker_api = tracker_pb2_grpc.TrackerServiceStub(tracker)

    org = directory.CreateOrganization(
        directory_pb2.CreateOrganizationRequest(slug="pyco", name="Python Co")
    ).organization.id
    project = directory.CreateProject(
        directory_pb2.CreateProjectRequest(organization_id=org, slug="web")
    ).project.id
    user = directory.CreateUser(
        directory_pb2.CreateUserRequest(
            display_name="Jess",
            emails=[directory_pb2.UserEmail(email="Jess@Sentry.io", verified=True)],
        )
    ).user.id
    directory.GrantProjectAccess(
        directory_pb2.GrantProjectAccessRequest(project_id=project, user_id=user)
    )
    group_ids = [
        groups.CreateGroup(groups_pb2.CreateGroupRequest(project_id=project, title=title)).group.id
        for title in ("KeyError in python client", "ValueError in python client")
    ]
    directory.InstallIntegration(
        directory_pb2.InstallIntegrationRequest(
            organization_id=org,
            integration_id="py-jira",
            sync_settings=directory_pb2.SyncSettings(
                sync_reverse_assignment=True, sync_status_reverse=True
            ),
        )
    )
    tracker_api.CreateIntegration(
        tracker_pb2.CreateIntegrationRequest(
            integration_id="py-jira",
            base_url=args.jira,
            credentials=tracker_pb2.Credentials(
                api_token=tracker_pb2.ApiTokenCredential(
                    account_email="bot@example.com", api_token="py-token"
                )
            ),
            webhook_secret=SECRET,
        )
    )

    # Subscribe from the head before anything happens; collect in a thread.
    stream = notifications.Subscribe(notifications_pb2.SubscribeRequest(start_at_head=True))
    received = []
    done = threading.Event()

    def read():
        try:
            for message in stream:
                if message.HasField("notification"):
                    n = message.notification
                    print(f"notification #{n.sequence} to user {n.recipient_user_id}: {n.message}")
                    if n.group_id in group_ids:
                        received.append(n)
                    if len(received) == 2:
                        done.set()
                        return
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                print(f"stream failed: {error}", file=sys.stderr)
            done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    created = tracker_api.CreateIssue(
        tracker_pb2.CreateIssueRequest(
            integration_id="py-jira",
            organization_id=org,
            group_ids=group_ids,
            project_id="10000",
            issue_type_id="1",
            title="Created from Python",
            request_id="python-story-1",
        )
    )
    assert created.link_state == tracker_pb2.LINK_STATE_LINKED, created
    print(f"created {created.issue.key}, linked")

    payload = json.loads(
        (pathlib.Path(args.fixtures) / "edit_issue_assignee_payload.json").read_text()
    )
    payload["issue"]["key"] = created.issue.key
    payload["issue"]["id"] = created.issue.id
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"{args.tracker_http}/webhooks/jira/py-jira",
        data=body,
        headers={"X-Hub-Signature": signature, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, response.status

    if not done.wait(timeout=30):
        print("timed out waiting for notifications", file=sys.stderr)
        return 1
    stream.cancel()
    assert len(received) == 2, received
    assert sorted(n.group_id for n in received) == sorted(group_ids)
    for n in received:
        assert n.kind == notifications_pb2.NOTIFICATION_KIND_ASSIGNED, n
        assert n.recipient_user_id == user, n
        assert not n.update, n
        assert n.external_issue_key == created.issue.key, n
    for group_id in group_ids:
        group = groups.GetGroup(groups_pb2.GetGroupRequest(group_id=group_id)).group
        assert group.assignee_user_id == user, group
    print("python story 1: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
