"""Transports and delivery guarantees: TCP device listeners, MQTT, the batch writer.

Data flows one way: transports frame bytes, ``decoders`` turn frames into fixes,
the writer commits them with binary COPY, and only then is the sender acknowledged.
"""
