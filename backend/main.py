"""ASGI entry point: uvicorn backend.main:app"""

from backend.api.app import create_app

app = create_app()
