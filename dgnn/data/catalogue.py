"""The dataset catalogue: each dataset name, its raw files with pinned SHA-256, and where to get them.

Mirror layout (``DGNN_DATA_MIRROR`` or ``--mirror``) is that of ``shared/datasets``; without a
mirror each file is downloaded from its canonical URL (``base_url`` + file name). The pins are
those of ``shared/datasets/SHA256SUMS``. Note: ``ind.pubmed.allx`` there is derived from
``pubmed.7z`` (the original is not in the mirror), so PubMed verifies only from a mirror.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from dgnn.data.planetoid import PLANETOID_FILES

PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data/"
GRAPHGALLERY_URL = "https://github.com/EdisonLeeeee/GraphData/raw/master/datasets/"

PINNED_SHA256 = """
f585d6127cd2e2a6605d3f1f7dded4003264f32db0b8d339adb2436559374a03  graphgallery/acm.npz
a6942db609f196b53503d91b99a02ad8d052d5d9be8ef41db976fb65f66ed1f3  graphgallery/amazon_cs.npz
bdb98b54cd3125bfa69b23ba0aae84fabcb770c6727175b8f6eb1d64f3be4b2b  graphgallery/amazon_photo.npz
115be8c3396ae7db96c60df578c8c24ee46d2547ca62fa538ec9852c338df6c6  graphgallery/blogcatalog.npz
403e8976b21eed58544dca956b6bd8b513779124c6f88da9538609b085ac8651  graphgallery/citeseer_full.npz
7b7b51bf270d341f1c4231834c58a526bb04db003fd76a6d2f51ad7d252005ed  graphgallery/coauthor_cs.npz
1c930d99910763bc5f0c1aa90e8baa945f5ad6027663fe5332d0f08fde33cd7d  graphgallery/coauthor_phy.npz
590d93689ec70aa0da17b3f1c6915dfd3c1b6306ad4f3286a2075599f7a85630  graphgallery/cora_ml.npz
e1c460c864735b88158e230e715715b08a8f7bb7c94f7f6c3b5efc412558877d  graphgallery/dblp.npz
8eebe3fa74d66818d1977af8e13f8697b9710a4485b43ef5cbea305ce2eabc6a  graphgallery/flickr.npz
02fd966f6f73b71baee954a735c523ff42a7aeffbb70858fd5d62ee0ba4a0ed2  graphgallery/uai.npz
2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668  planetoid/CiteSeer/raw/ind.citeseer.allx
f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95  planetoid/CiteSeer/raw/ind.citeseer.ally
d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7  planetoid/CiteSeer/raw/ind.citeseer.graph
2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4  planetoid/CiteSeer/raw/ind.citeseer.test.index
539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21  planetoid/CiteSeer/raw/ind.citeseer.tx
55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce  planetoid/CiteSeer/raw/ind.citeseer.ty
d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6  planetoid/CiteSeer/raw/ind.citeseer.x
8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924  planetoid/CiteSeer/raw/ind.citeseer.y
9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543  planetoid/Cora/raw/ind.cora.allx
2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71  planetoid/Cora/raw/ind.cora.ally
58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d  planetoid/Cora/raw/ind.cora.graph
297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875  planetoid/Cora/raw/ind.cora.test.index
b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a  planetoid/Cora/raw/ind.cora.tx
41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad  planetoid/Cora/raw/ind.cora.ty
23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab  planetoid/Cora/raw/ind.cora.x
94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1  planetoid/Cora/raw/ind.cora.y
8f05d6ea7e65d88d9e20ab75f1bde86a34da343fb4a76a9a848df1fd908adf9f  planetoid/PubMed/raw/ind.pubmed.allx
0c37bbe3b5014ec365e9d393cf4791925e5ed94fb194305d74f064a8d7b50f0e  planetoid/PubMed/raw/ind.pubmed.ally
5b89f0036ca22909471f1e6558eb42fa06e0c730a577bde5b058b40638f81dc9  planetoid/PubMed/raw/ind.pubmed.graph
b101d421688bbaecbd82e8a18f1e282378d6830f3a37666f28ebc47f844341b5  planetoid/PubMed/raw/ind.pubmed.test.index
4eb5f5d0f30f26497eb0ac6ac9719d09c67e284f1ed0385c93f3ef27a671da3d  planetoid/PubMed/raw/ind.pubmed.tx
ee2e0d4819d9fbcc403689c3bf2e49face401b605932f093bc58ab6461130fdd  planetoid/PubMed/raw/ind.pubmed.ty
fbe9cb5c47200d1b7769a26e579be3b7130b556831f9d850e77c4c74f2599b33  planetoid/PubMed/raw/ind.pubmed.x
e6c807633307a07ed659249006536a147c7999c797f11a2560752990181b41b3  planetoid/PubMed/raw/ind.pubmed.y
"""
_SHA256 = {path: digest for digest, path in (line.split() for line in PINNED_SHA256.split("\n") if line)}


@dataclass(frozen=True)
class Source:
    """One catalogue dataset: how to read it and its raw files (mirror-relative path -> SHA-256)."""

    name: str
    reader: str  # "planetoid" or "npz"
    files: dict[str, str]
    base_url: str

    def url(self, path: str) -> str:
        return self.base_url + PurePosixPath(path).name


def _planetoid(name: str, folder: str) -> Source:
    paths = [f"planetoid/{folder}/raw/ind.{name}.{part}" for part in PLANETOID_FILES]
    return Source(name, "planetoid", {p: _SHA256[p] for p in paths}, PLANETOID_URL)


def _npz(name: str, stem: str) -> Source:
    path = f"graphgallery/{stem}.npz"
    return Source(name, "npz", {path: _SHA256[path]}, GRAPHGALLERY_URL)


CATALOGUE: dict[str, Source] = {
    source.name: source
    for source in (
        _planetoid("cora", "Cora"),
        _planetoid("citeseer", "CiteSeer"),
        _planetoid("pubmed", "PubMed"),
        _npz("amazon-computers", "amazon_cs"),
        _npz("amazon-photo", "amazon_photo"),
        _npz("coauthor-cs", "coauthor_cs"),
        _npz("coauthor-physics", "coauthor_phy"),
        _npz("acm", "acm"),
        _npz("dblp", "dblp"),
        _npz("cora-ml", "cora_ml"),
        _npz("citeseer-full", "citeseer_full"),
        _npz("blogcatalog", "blogcatalog"),
        _npz("flickr", "flickr"),
        _npz("uai", "uai"),
    )
}
DATASETS: list[str] = list(CATALOGUE)
