"""Admin command line: python -m backend.users create-user NAME --role member.

``create-worker-token NAME`` prints a worker token once: a worker on another host joins with
it (FITBOARD_URL, FITBOARD_WORKER_TOKEN and REDIS_URL are all it needs).

``first-admin`` creates the admin ``admin`` on a database nobody can sign in to yet (what
``make run`` does; docker compose runs it after migrating) and prints its password once.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.orm import Session

from backend.audit import service as audit
from backend.config import get_settings
from backend.db.session import session_scope
from backend.errors import DomainError
from backend.users import service as users
from backend.users.bootstrap import announce_first_admin
from backend.users.models import Role
from backend.workers import service as workers
from backend.workers.models import WorkerToken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.users", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="create a user; prints its password once")
    create.add_argument("username")
    create.add_argument("--role", choices=[r.value for r in Role], default=Role.member.value)
    reset = commands.add_parser("reset-password", help="set a new generated password")
    reset.add_argument("username")
    commands.add_parser("list-users", help="every user with role and state")
    worker = commands.add_parser(
        "create-worker-token",
        help="a token for a worker on another host (FITBOARD_WORKER_TOKEN); printed once",
    )
    worker.add_argument("name", help="which worker or host it is for, e.g. gpu-box-1")
    ensure = commands.add_parser(
        "ensure-worker-token",
        help="register FITBOARD_WORKER_TOKEN (a token you chose, e.g. in compose's .env) "
        "unless it is known",
    )
    ensure.add_argument("name")
    commands.add_parser("list-worker-tokens", help="worker tokens that are not revoked")
    revoke = commands.add_parser(
        "revoke-worker-token", help="revoke a worker token: its worker claims no new run"
    )
    revoke.add_argument("token_id", type=int)
    commands.add_parser(
        "first-admin",
        help="create 'admin' if nobody can sign in yet (FITBOARD_ADMIN_PASSWORD or a random "
        "password, printed once); does nothing otherwise",
    )
    args = parser.parse_args(argv)
    if args.command == "first-admin":
        settings = get_settings()
        host = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
        announce_first_admin(settings, f"http://{host}:{settings.port}")
        return 0
    try:
        with session_scope() as session:
            if args.command == "create-user":
                user, password = users.create(session, username=args.username, role=Role(args.role))
                print(f"created {user.username} ({user.role}); password (shown once): {password}")
            elif args.command == "create-worker-token":
                token, plaintext = workers.create_token(session, name=args.name, created_by_id=None)
                _audit_worker_token(session, audit.Action.worker_token_created, token)
                print(f"worker token {token.id} ({token.name}), shown once: {plaintext}")
                print("on the GPU host: FITBOARD_URL=<api address> FITBOARD_WORKER_TOKEN=<token>")
            elif args.command == "ensure-worker-token":
                given = get_settings().worker_token
                if not given:
                    print("error: set FITBOARD_WORKER_TOKEN", file=sys.stderr)
                    return 1
                if workers.ensure_token(session, name=args.name, plaintext=given):
                    print(f"registered the worker token {given[:10]}... as {args.name!r}")
                else:
                    print(f"the worker token {given[:10]}... is known already")
            elif args.command == "list-worker-tokens":
                for token in workers.list_tokens(session):
                    used = token.last_used_at.isoformat() if token.last_used_at else "never used"
                    host = token.last_host or "-"
                    print(f"{token.id}\t{token.name}\t{token.prefix}...\t{host}\t{used}")
            elif args.command == "revoke-worker-token":
                token = workers.revoke_token(session, token_id=args.token_id)
                _audit_worker_token(session, audit.Action.worker_token_revoked, token)
                print(f"revoked worker token {token.id} ({token.name})")
            elif args.command == "reset-password":
                found = [u for u in users.list_all(session) if u.username == args.username]
                if not found:
                    print(f"no user named {args.username!r}", file=sys.stderr)
                    return 1
                user, password = users.update(session, user_id=found[0].id, reset_password=True)
                audit.record(
                    session,
                    action=audit.Action.password_reset,
                    actor=None,
                    actor_name="(command line)",
                    target_type="user",
                    target_id=user.id,
                    target_name=user.username,
                    target_user_id=user.id,
                    details={"sessions_ended": True, "tokens_revoked": True},
                )
                print(f"new password of {args.username} (shown once): {password}")
            else:
                for user in users.list_all(session):
                    state = "active" if user.is_active else "deactivated"
                    print(f"{user.id}\t{user.username}\t{user.role}\t{state}")
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    return 0


def _audit_worker_token(session: Session, action: audit.Action, token: WorkerToken) -> None:
    audit.record(
        session,
        action=action,
        actor=None,
        actor_name="(command line)",
        target_type="worker_token",
        target_id=token.id,
        target_name=token.name,
    )


if __name__ == "__main__":
    sys.exit(main())
