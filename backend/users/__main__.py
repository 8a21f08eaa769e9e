"""Admin command line: python -m backend.users create-user NAME --role member.

``first-admin`` creates the admin ``admin`` on a database nobody can sign in to yet (what
``make run`` does; docker compose runs it after migrating) and prints its password once.
"""

from __future__ import annotations

import argparse
import sys

from backend.config import get_settings
from backend.db.session import session_scope
from backend.errors import DomainError
from backend.users import service as users
from backend.users.bootstrap import announce_first_admin
from backend.users.models import Role


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.users", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="create a user; prints its password once")
    create.add_argument("username")
    create.add_argument("--role", choices=[r.value for r in Role], default=Role.member.value)
    reset = commands.add_parser("reset-password", help="set a new generated password")
    reset.add_argument("username")
    commands.add_parser("list-users", help="every user with role and state")
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
            elif args.command == "reset-password":
                found = [u for u in users.list_all(session) if u.username == args.username]
                if not found:
                    print(f"no user named {args.username!r}", file=sys.stderr)
                    return 1
                _, password = users.update(session, user_id=found[0].id, reset_password=True)
                print(f"new password of {args.username} (shown once): {password}")
            else:
                for user in users.list_all(session):
                    state = "active" if user.is_active else "deactivated"
                    print(f"{user.id}\t{user.username}\t{user.role}\t{state}")
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
