"""A page to try the agent in a browser: paste a key, chat, watch tools run (`/playground`)."""
