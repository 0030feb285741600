"""Protocol parsers: bytes in, typed observations out.

Pure code: no sockets, files, threads or global state, and nothing imported from
``agent`` or ``collector``. Patient data never leaves a parser.
"""
