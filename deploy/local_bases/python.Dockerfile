# A stand-in for python:3.11-slim built from Debian bookworm's own packages, for hosts that reach Debian's
# mirrors and PyPI but no container registry (assets_tests/test_docker_stack.py builds it). Python 3.11 is
# bookworm's python3; `python` and `pip` are on PATH as in the official image, and pip installs system-wide
# (into /usr/local, as there) because this image is a container, not a Debian system to protect.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 python3-pip python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* /usr/lib/python3.11/EXTERNALLY-MANAGED \
    && ln -s /usr/bin/python3 /usr/local/bin/python && ln -s /usr/bin/pip3 /usr/local/bin/pip
CMD ["python3"]
