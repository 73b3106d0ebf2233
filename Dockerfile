# The pipeline in a pinned image. Build and run (README, "Using it"; docs/environment.md):
#   docker build -t grokking-repro .
#   mkdir -p results && docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/results:/results" grokking-repro
# The image holds no .git, so DVC runs with core.no_scm (set below).
FROM python:3.11.7-slim-bookworm

RUN useradd --create-home --uid 1000 repro
USER repro
# Made by the user itself, so that the user owns it.
RUN mkdir /home/repro/grokking-repro
WORKDIR /home/repro/grokking-repro

# The lock file, the set-up script and the package's __init__.py first (the editable install finds its
# subpackages when they come), so that code edits reuse the installed layer.
COPY --chown=repro:repro requirements.lock setup.sh pyproject.toml README.md ./
COPY --chown=repro:repro repro/__init__.py repro/
RUN ./setup.sh
COPY --chown=repro:repro . .
RUN .venv/bin/dvc config --local core.no_scm true
# `docker run --user "$(id -u):$(id -g)"` runs as the host's user, whatever its uid, so that /results
# belongs to it: the work dir (not the installed .venv) and HOME must be writable by any user.
RUN find . -path ./.venv -prune -o -exec chmod a+rwX {} + && chmod a+rwX /home/repro

ENV PATH=/home/repro/grokking-repro/.venv/bin:$PATH \
    HOME=/home/repro \
    RESULTS=/results
VOLUME /results
# Runs every stage, then copies what a reader looks at into the mounted folder.
CMD ["bash", "-c", "dvc repro && cp -r figures metrics records histories reports dvc.lock runs \"$RESULTS\"/"]
