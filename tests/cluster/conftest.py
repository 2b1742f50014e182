"""The cluster tier's fixture: one cluster (:mod:`.harness`) for the whole module.

The tier needs root, iproute2, haproxy and socat; when any of that is missing it FAILS (it is
never skipped). Namespaces, links and processes are removed at the end, also after a failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.harness import Cluster, ClusterError, running_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    try:
        with running_cluster(root) as c:
            yield c
    except ClusterError as exc:
        pytest.fail(f"cluster tier: {exc}")
