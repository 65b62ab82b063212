"""Greetings, as plain text and as protobuf messages."""

from proto import greeting_pb2


def greet(name):
    """The greeting for `name`."""
    return f"hello, {name}"


def greeting_message(name):
    """The greeting for `name` as a `Greeting` message."""
    return greeting_pb2.Greeting(recipient=name, text=greet(name))
