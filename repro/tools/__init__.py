"""The tools that are no stage of the pipeline: speed and plans (bench), checks (verify, compare, trace), state
(adopt, status), and the files written from code (readme, pipelines), with their commands (commands.py).

No stage imports them, so editing one reruns no stage (tests/test_dvc_deps.py checks it).
"""
