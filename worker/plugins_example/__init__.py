"""Model-template plugins shipped with Fitboard; always on the plugin path (see
backend/spec/plugins.py for the contract). Loaded by file path, not imported as a package.
"""
