"""Uploaded datasets: CSV, NPZ and zips of image folders, checked before they are stored."""
