"""``make stack``: the production topology of highscale as local processes.

``python -m deploy.stack`` prepares the data directories and configuration files under
``STACK_VAR_DIR`` (default ``var/stack``) and runs every process under honcho, each one
through ``python -m deploy.stack.supervise <name>``, which waits for what the process
needs, starts it in a session of its own and stops it in tier order (see
``deploy/stack/services.py``).
"""
