"""The cluster path: a Ray cluster started on loopback inside the test (a head and a worker node)
embeds 40 sample photos; the embeddings must equal the local path's, bit for bit."""

import os

import numpy as np
import pytest

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def ray_cluster():
    # Before Ray is imported: no usage statistics, and every node, the driver included, on loopback
    # (Ray otherwise swaps 127.0.0.1 for the machine's network address).
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1"}
    )
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_cluster_embeddings_equal_local_ones(ray_cluster, london, tmp_path):
    import ray

    from privrisk.embeddings import EmbeddingCache, Workers, embed_batch
    from privrisk.manifest import read_manifest
    from privrisk.samples import sample_manifest

    # 20 people's two photos: enough for both nodes to take work, a fifth of the sample's descriptors
    paths = [r.image for kind in ("neutral", "smiling") for r in read_manifest(sample_manifest(kind), london).rows[:20]]
    paths.append(london / "ATTRIBUTION.md")  # a bad item must come back as a skipped result, not fail the job
    seen = []
    remote = embed_batch(
        paths,
        workers=Workers(ray_address=ray_cluster.address),
        cache=EmbeddingCache(tmp_path / "ray.sqlite"),
        progress=lambda done, total: seen.append(done),
    )
    assert len(ray.nodes()) == 2 and sum(n["Alive"] for n in ray.nodes()) == 2
    local = embed_batch(paths, workers=2)
    assert len(remote) == len(local) == len(paths)
    for r, loc in zip(remote, local):
        assert r.error == loc.error and r.sha256 == loc.sha256
        assert len(r.faces) == len(loc.faces)
        for fr, fl in zip(r.faces, loc.faces):
            assert fr.box == fl.box and np.array_equal(fr.embedding, fl.embedding)
    assert not remote[-1].ok and "not a recognised image" in remote[-1].error
    assert seen and seen[-1] == len(paths)
    # resumable: a second pass is answered by the cache, nothing goes to the cluster
    again = embed_batch(
        paths, workers=Workers(ray_address=ray_cluster.address), cache=EmbeddingCache(tmp_path / "ray.sqlite")
    )
    assert all(a.cached for a in again[:-1])
