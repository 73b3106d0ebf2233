# The pipeline in a pinned image. Build and run (README, "Docker"):
#   docker build -t grokking-repro .
#   docker run --rm -v "$PWD/results:/results" grokking-repro
# The image holds no .git, so DVC runs with core.no_scm (set below).
FROM python:3.11.7-slim-bookworm

RUN useradd --create-home --uid 1000 repro
USER repro
# Made by the user itself, so that the user owns it.
RUN mkdir /home/repro/grokking-repro
WORKDIR /home/repro/grokking-repro

# The lock file and set-up script first, so that code edits reuse the installed layer.
COPY --chown=repro:repro requirements.lock setup.sh pyproject.toml README.md ./
COPY --chown=repro:repro repro/__init__.py repro/
RUN ./setup.sh
COPY --chown=repro:repro . .
RUN .venv/bin/dvc config --local core.no_scm true

ENV PATH=/home/repro/grokking-repro/.venv/bin:$PATH \
    RESULTS=/results
VOLUME /results
# Runs every stage, then copies what a reader looks at into the mounted folder.
CMD ["bash", "-c", "dvc repro && cp -r figures metrics reports dvc.lock runs \"$RESULTS\"/"]
