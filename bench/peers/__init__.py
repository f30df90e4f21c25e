"""The peers that send the benchmark's messages: one module each, all behind ``Peer``."""
