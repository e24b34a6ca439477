"""The HTTP shim: a Bottle app exposing echoops' endpoints by calling echoops.core."""
