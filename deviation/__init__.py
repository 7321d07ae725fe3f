"""The rules: pure state machines that compare a vehicle's fixes with its plan and its
zones (quality, zone membership, speed, silence, stops, corridor, schedule), and the
vocabulary they share (``model``: ``Sample`` in, ``Event`` out). No I/O; the tower
(``tower/``) runs them, saves their states and applies what they find.
"""
