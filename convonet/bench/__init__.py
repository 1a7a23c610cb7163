"""`convonet bench`: measurements of a running Convonet: latency, load and the bridge.

Each bench is a subcommand of the typer app in `convonet.bench.cli`, which `convonet.cli`
mounts as `convonet bench`.
"""
