"""Workers on any host: their tokens and the HTTP protocol they train runs through."""
