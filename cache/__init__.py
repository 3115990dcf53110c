"""The cached-inference stage and its file format."""
