"""The Python subscriber (jira_sync_client) against the real assignment service:
restarted mid-stream, it resumes with no gap and no duplicate and acknowledges what
it handled; a cursor behind retention raises OutOfRange with the oldest available.

Usage: python test_resume.py --binary target/debug/assignment-service --workdir DIR
(stubs generated from proto/ on sys.path; see .ci/clients.sh).
"""

import argparse
import pathlib
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import grpc

from assignment.v1 import directory_pb2, directory_pb2_grpc
from assignment.v1 import groups_pb2, groups_pb2_grpc
from assignment.v1 import notifications_pb2, notifications_pb2_grpc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from jira_sync_client import Durable, OutOfRange, Subscriber  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(what, check, deadline=20.0):
    give_up = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Service:
    def __init__(self, binary, workdir):
        self.binary, self.workdir = binary, pathlib.Path(workdir)
        self.grpc, self.http = free_port(), free_port()
        self.target = f"127.0.0.1:{self.grpc}"
        self.proc = None
        self.starts = 0

    def start(self, *extra):
        self.starts += 1
        log = open(self.workdir / f"assignment-{self.starts}.log", "w")
        self.proc = subprocess.Popen(
            [self.binary, "--grpc-addr", self.target, "--http-addr", f"127.0.0.1:{self.http}",
             "--database-url", f"sqlite://{self.workdir / 'py-resume.db'}?mode=rwc",
             "--progress-interval", "1s", *extra],
            stdout=log, stderr=subprocess.STDOUT)

        def healthy():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{self.http}/readyz", timeout=1).status == 200
            except OSError:
                return False
        until("the assignment service to be ready", healthy, 60)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)


def stored(channel):
    """Every retained notification's sequence, read until the stream reports progress."""
    stub = notifications_pb2_grpc.NotificationServiceStub(channel)
    call = stub.Subscribe(notifications_pb2.SubscribeRequest(), timeout=15)
    sequences = []
    for message in call:
        if message.WhichOneof("event") == "notification":
            sequences.append(message.notification.sequence)
        elif message.WhichOneof("event") == "progress":
            call.cancel()
            break
    return sequences


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    service = Service(args.binary, args.workdir)
    service.start()
    channel = grpc.insecure_channel(service.target)
    directory = directory_pb2_grpc.DirectoryServiceStub(channel)
    groups = groups_pb2_grpc.GroupServiceStub(channel)
    org = directory.CreateOrganization(directory_pb2.CreateOrganizationRequest(slug="pyresume")).organization.id
    project = directory.CreateProject(directory_pb2.CreateProjectRequest(organization_id=org, slug="web")).project.id
    users = []
    for name in ("ann", "bob"):
        user = directory.CreateUser(directory_pb2.CreateUserRequest(
            display_name=name, emails=[directory_pb2.UserEmail(email=f"{name}@py.example", verified=True)])).user.id
        directory.GrantProjectAccess(directory_pb2.GrantProjectAccessRequest(project_id=project, user_id=user))
        users.append(user)
    group = groups.CreateGroup(groups_pb2.CreateGroupRequest(project_id=project, title="TypeError")).group.id

    def assign(i):
        groups.AssignGroup(groups_pb2.AssignGroupRequest(group_id=group, user_id=users[i % 2]))

    seen = []
    subscriber = Subscriber(service.target, start=Durable("py-client"))
    stop = threading.Event()

    def handle(event):
        if not isinstance(event, int):
            seen.append(event.sequence)

    thread = threading.Thread(target=subscriber.run, args=(handle, stop), daemon=True)
    thread.start()
    for i in range(5):
        assign(i)
    before = stored(channel)
    until("the first notifications", lambda: seen == before)

    # Restart mid-stream; more notifications are written while it reconnects.
    service.stop()
    service.start()
    channel = grpc.insecure_channel(service.target)
    groups = groups_pb2_grpc.GroupServiceStub(channel)
    for i in range(5, 10):
        assign(i)
    everything = stored(channel)
    assert len(everything) > len(before), everything
    until("every notification once, in order", lambda: seen == everything)
    assert subscriber.subscriptions > 1, "the subscriber resumed"
    notifications = notifications_pb2_grpc.NotificationServiceStub(channel)
    until("the last acknowledgement", lambda: notifications.GetSubscriber(
        notifications_pb2.GetSubscriberRequest(subscriber_name="py-client")
    ).subscriber.acknowledged_sequence == everything[-1])
    stop.set()
    subscriber.close()
    thread.join(timeout=10)
    print(f"python subscriber: {len(seen)} notifications, once each, in order, across a restart "
          f"({subscriber.subscriptions} subscriptions); acknowledged through {everything[-1]}")

    # Retention keeps 3: a cursor at 0 is behind it.
    service.stop()
    service.start("--retention-max-count", "3", "--retention-interval", "100ms")
    channel = grpc.insecure_channel(service.target)
    oldest = until("retention to prune", lambda: (lambda s: s and s[0] > 1 and s[0])(stored(channel)))
    try:
        Subscriber(service.target, start=0).run(lambda event: None)
    except OutOfRange as error:
        assert error.oldest == oldest, (error.oldest, oldest)
        print(f"python subscriber: OutOfRange(oldest={error.oldest}) as expected")
    else:
        raise AssertionError("no OutOfRange")
    finally:
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
