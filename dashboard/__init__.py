"""The dashboard (Dash over MQTT); it knows the score schema and MQTT, nothing else."""
