"""E-mail: the SMTP listener, reading a message, who may write, and the answer.

These modules know nothing of the database: what they need to decide (is this a worker's
address, is this sender allowed, where is a message stored) is passed in.
"""
