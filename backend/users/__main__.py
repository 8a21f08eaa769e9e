"""Admin command line: python -m backend.users create-user NAME --role member."""

from __future__ import annotations

import argparse
import sys

from backend.db.session import session_scope
from backend.errors import DomainError
from backend.users import service as users
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
    args = parser.parse_args(argv)
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
