"""Plan-vs-actual rules (corridor, schedule, speed, stops).

Empty until the control-tower issue; present so the package layout and import
rules are fixed from the start.
"""
