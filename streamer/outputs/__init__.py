"""Where scores go: the MQTT broker, an LSL score stream and the session log on disk."""
