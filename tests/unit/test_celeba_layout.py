"""``index_celeba`` on copies of CelebA's metadata written as users have it: the split each layout gets, the notes it
reports, the attributes' values and type, and the messages for metadata that disagrees with the images. The image
files are placeholders here: indexing never decodes them (integration/test_celeba.py does, through the data module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nag.data.celeba_layout import detect_layout, index_celeba
from nag.data.celeba_metadata import CelebAMetadataError
from tests.helpers.celeba import CELEBA_ATTRIBUTES, OFFICIAL, attribute_table

NO_PARTITION = "no partition file: official index ranges used for the split"
NO_ATTRIBUTES = "no attribute file: images are served without attributes"


def touch(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"\xff\xd8 not decoded here")
    return folder


def attr_txt(path: Path, names: list[str], count: int | None = None) -> dict[str, np.ndarray]:
    table = attribute_table(names)
    lines = [f"{len(names) if count is None else count}\n", " ".join(CELEBA_ATTRIBUTES) + "\n"]
    lines += [f"{n} " + " ".join(str(v) for v in table[n]) + "\n" for n in names]
    path.write_text("".join(lines))
    return table


def test_torchvision_copy_uses_its_partition_file_and_attributes(tmp_path: Path) -> None:
    base = tmp_path / "celeba"
    touch(base / "img_align_celeba", list(OFFICIAL))
    (base / "list_eval_partition.txt").write_text("".join(f"{n} {s}\n" for n, s in OFFICIAL.items()))
    table = attr_txt(base / "list_attr_celeba.txt", list(OFFICIAL))
    index = index_celeba(tmp_path)
    assert index.split_source == "partition file" and index.notes == []
    assert [len(index.files[s]) for s in ("train", "val", "test")] == [20, 8, 8]
    assert index.attribute_names == tuple(CELEBA_ATTRIBUTES)
    first_val = index.files["val"][0]
    assert index.attributes["val"].dtype == np.uint8 and index.attributes["val"].shape == (8, 40)
    assert index.attributes["val"][0].tolist() == (table[first_val] > 0).astype(int).tolist()


def test_kaggle_copy_inside_a_celeba_folder_uses_its_csv_partition(tmp_path: Path) -> None:
    base = tmp_path / "celeba"
    names = {**OFFICIAL, "000021.jpg": 2}  # officially train: only the partition file puts it in test
    touch(base / "img_align_celeba" / "img_align_celeba", list(names))
    (base / "list_eval_partition.csv").write_text(
        "image_id,partition\n" + "".join(f"{n},{s}\n" for n, s in names.items())
    )
    layout = detect_layout(tmp_path)
    assert layout.kind == "kaggle" and layout.partition_file == base / "list_eval_partition.csv"
    index = index_celeba(tmp_path)
    assert index.split_source == "partition file" and "000021.jpg" in index.files["test"]
    assert index.notes == [NO_ATTRIBUTES]
    assert index.attributes["train"].shape == (20, 0) and index.attributes["train"].dtype == np.uint8


def test_official_names_without_metadata_get_the_official_ranges_and_say_so(tmp_path: Path) -> None:
    touch(tmp_path / "celeba" / "img_align_celeba", list(OFFICIAL))
    index = index_celeba(tmp_path)
    assert index.split_source == "official ranges" and index.notes == [NO_PARTITION, NO_ATTRIBUTES]
    assert [len(index.files[s]) for s in ("train", "val", "test")] == [20, 8, 8]
    # a plain folder has no metadata to miss: no notes
    folder = index_celeba(touch(tmp_path / "folder", list(OFFICIAL)))
    assert folder.layout.kind == "folder" and folder.split_source == "official ranges" and folder.notes == []


def test_a_plain_folder_gets_the_seeded_split_of_its_fractions(tmp_path: Path) -> None:
    touch(tmp_path, [f"face_{i:03d}.jpg" for i in range(40)])
    (tmp_path / "readme.txt").write_text("not an image")
    (tmp_path / "album.jpg").mkdir()  # a folder with an image's name is not an image
    index = index_celeba(tmp_path)
    assert index.split_source == "seeded split" and index.notes == []
    assert [len(index.files[s]) for s in ("train", "val", "test")] == [32, 4, 4]
    every = sorted(sum(index.files.values(), []))
    assert every == [f"face_{i:03d}.jpg" for i in range(40)]  # no readme, no album
    assert index_celeba(tmp_path, (8, 1, 1)).files == index.files  # fractions are relative
    assert index_celeba(tmp_path, split_seed=0).files == index.files  # seed 0 by default
    assert index_celeba(tmp_path, split_seed=1).files != index.files
    assert [len(v) for v in index_celeba(tmp_path, (2, 1, 1)).files.values()] == [20, 10, 10]


def test_an_attribute_row_with_the_wrong_count_is_quoted_briefly(tmp_path: Path) -> None:
    base = tmp_path / "celeba"
    touch(base / "img_align_celeba", ["000001.jpg"])
    header = "1\n" + " ".join(CELEBA_ATTRIBUTES) + "\n"
    for values, quoted in (
        (["1", "-1", "1", "1", "-1", "1"], "6 values ['1', '-1', '1', '1']…."),
        (["1", "-1", "1", "1", "1"], "5 values ['1', '-1', '1', '1']…."),
        (["1", "-1", "1", "1"], "4 values ['1', '-1', '1', '1']."),
        (["1", "-1", "1"], "3 values ['1', '-1', '1']."),
    ):
        (base / "list_attr_celeba.txt").write_text(header + "000001.jpg " + " ".join(values) + "\n")
        with pytest.raises(CelebAMetadataError) as err:
            index_celeba(tmp_path)
        assert str(err.value) == (
            f"{base / 'list_attr_celeba.txt'}, line 3: expected an image name and 40 values of 1/-1, got {quoted}"
        )


def test_the_image_count_line_of_the_txt_must_agree(tmp_path: Path) -> None:
    base = tmp_path / "celeba"
    names = list(OFFICIAL)[:5]
    touch(base / "img_align_celeba", names)
    attr_txt(base / "list_attr_celeba.txt", names, count=7)
    with pytest.raises(CelebAMetadataError, match=r"list_attr_celeba.txt, line 1: says 7 images but the file has 5"):
        index_celeba(tmp_path)


def test_an_attribute_file_missing_images_and_an_empty_csv_header_are_named(tmp_path: Path) -> None:
    base = tmp_path / "celeba"
    names = list(OFFICIAL)[:8]
    touch(base / "img_align_celeba", names)
    attr_txt(base / "list_attr_celeba.txt", names[:4])
    with pytest.raises(CelebAMetadataError) as err:
        index_celeba(tmp_path)
    assert str(err.value) == (
        f"{base / 'list_attr_celeba.txt'} has no row for 4 image(s) in "
        f"{base / 'img_align_celeba'}, e.g. ['000005.jpg', '000006.jpg', "
        "'000007.jpg']."
    )
    kaggle = tmp_path / "k"
    touch(kaggle / "img_align_celeba" / "img_align_celeba", names)
    (kaggle / "list_attr_celeba.csv").write_text("")
    with pytest.raises(CelebAMetadataError, match=r"list_attr_celeba.csv: no attribute names in its header\.$"):
        index_celeba(kaggle)


def test_a_partition_file_that_disagrees_names_the_file_and_the_folder(tmp_path: Path) -> None:
    base = tmp_path / "celeba"
    names = list(OFFICIAL)[:3]
    folder = touch(base / "img_align_celeba", [*names, "a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    (base / "list_eval_partition.txt").write_text("".join(f"{n} 0\n" for n in names))
    with pytest.raises(CelebAMetadataError) as err:
        index_celeba(tmp_path)
    assert str(err.value).startswith(
        f"{base / 'list_eval_partition.txt'} does not list 4 image(s) found in "
        f"{folder}, e.g. ['a.jpg', 'b.jpg', 'c.jpg']. "
    )
    (base / "list_eval_partition.txt").write_text(
        "".join(f"{n} 0\n" for n in [*names, "a.jpg", "b.jpg", "c.jpg", "d.jpg", "zz.jpg"])
    )
    with pytest.raises(CelebAMetadataError) as err:
        index_celeba(tmp_path)
    assert str(err.value).startswith(
        f"{base / 'list_eval_partition.txt'}, line 8: lists zz.jpg, which is not in "
        f"{folder} (1 listed images are missing)."
    )


def test_no_celeba_names_every_place_searched_and_every_way_to_get_it(tmp_path: Path) -> None:
    from nag.data.celeba_layout import CelebANotFoundError, not_found

    err = not_found(tmp_path / "none")
    assert isinstance(err, CelebANotFoundError)
    text = str(err)
    assert text.startswith(f"No CelebA found under data.root={tmp_path}/none (resolved to "), text[:80]
    lines = [line.strip() for line in text.splitlines()]
    for way in (  # each a line of its own, as a user reads it
        "Get CelebA with one of:",
        "- data.download=true: torchvision's Google Drive download (needs `pip install gdown`; Drive's daily quota",
        "- Kaggle: `kaggle datasets download -d jessicali9530/celeba-dataset`, then unzip the archive into",
        "- the CelebA project page (mmlab.ie.cuhk.edu.hk/projects/CelebA.html): 'Align&Cropped Images'",
    ):
        assert any(line.startswith(way) for line in lines), way
    assert lines[-1] == (
        "Point data.root (or $NAG_DATA_DIR) at the folder, or train offline on the embedded faces with data=synthetic."
    )
    assert str(not_found(tmp_path, first="The download failed. ")).startswith("The download failed. No CelebA")


def test_an_attribute_file_with_two_rows_for_one_image_is_refused_and_values_read_as_zero_one(tmp_path: Path) -> None:
    from nag.data.celeba_metadata import read_attributes

    path = tmp_path / "list_attr_celeba.txt"
    path.write_text("3\nSmiling Bald\n000001.jpg 1 -1\n000002.jpg -1 -1\n000003.jpg -1 1\n")
    names, rows = read_attributes(path)
    assert names == ("Smiling", "Bald")
    assert {k: v.tolist() for k, v in rows.items()} == {
        "000001.jpg": [1, 0],
        "000002.jpg": [0, 0],
        "000003.jpg": [0, 1],
    }
    path.write_text("3\nSmiling Bald\n000001.jpg 1 -1\n000002.jpg -1 -1\n000001.jpg -1 1\n")
    with pytest.raises(CelebAMetadataError, match=r"line 5: a second row for 000001.jpg; an image has one row"):
        read_attributes(path)


def test_a_partition_file_listing_an_image_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    from nag.data.celeba_metadata import read_partition

    path = tmp_path / "list_eval_partition.txt"
    path.write_text("000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n")
    assert read_partition(path) == {"000001.jpg": (0, 1), "000002.jpg": (1, 2), "000003.jpg": (2, 3)}
    path.write_text("000001.jpg 0\n000002.jpg 1\n000001.jpg 2\n")
    with pytest.raises(CelebAMetadataError, match=r"line 3: lists 000001.jpg a second time \(first on line 1\)"):
        read_partition(path)


def test_a_metadata_file_that_is_not_utf8_from_its_first_line_says_so(tmp_path: Path) -> None:
    from nag.data.celeba_metadata import read_partition

    path = tmp_path / "list_eval_partition.txt"
    path.write_bytes(b"\xff\xfe000001.jpg 0\n")
    with pytest.raises(CelebAMetadataError, match=r"not UTF-8 text \(byte 0 of a line after line 0\)"):
        read_partition(path)
