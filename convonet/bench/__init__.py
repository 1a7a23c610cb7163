"""`convonet bench`: measurements of a running Convonet (latency today; load and bridge later).

Each bench is a subcommand of the typer app in `convonet.bench.cli`, which `convonet.cli`
mounts as `convonet bench`.
"""
