"""The agent: tools the model may call, and the loop that runs a turn."""
