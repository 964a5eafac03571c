"""C-DSVAE's Sprites judge without torch: the reader of torch files and the converter against a narrow torch copy.

tests/fixtures/cdsvae/make_fixture.py wrote the fixture with torch (see its docstring); nothing here imports torch.
"""

import os
import pickle
import types
import zipfile

import numpy as np
import pytest

from dsa_jax.evaluation import cdsvae_judge, judges, report, torch_files

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "cdsvae")
CONTAINERS = ["judge.tar", "judge_legacy.tar"]  # torch's zip format and its legacy stream, the same weights


@pytest.fixture(scope="module")
def expected():
  with np.load(os.path.join(FIXTURE, "expected.npz")) as saved:
    return dict(saved)


@pytest.mark.parametrize("name", CONTAINERS)
def test_the_loaded_judge_gives_the_torch_models_probabilities_and_features(expected, name):
  path = os.path.join(FIXTURE, name)
  judge = judges.load(f"cdsvae:{path}")
  assert isinstance(judge, cdsvae_judge.CdsvaeJudge) and judge.directory == path
  assert judge.classes == {"action": 9, "body": 6, "bottom": 6, "top": 6, "hair": 6}
  assert judge.dynamic_heads == ["action"]
  with open(path, "rb") as file:
    assert judge.info["params_sha256"] == judges.sha256(file.read())
  assert judge.info["dataset"] == "sprites" and judge.info["image_shape"] == [64, 64, 3]
  assert judge.info["heads"] == [[name, classes] for name, classes in judge.classes.items()]
  probabilities, features = judge.predict(expected["videos"] / 255.0, batch_size=2)  # two batches of 3 videos
  for ours, theirs in cdsvae_judge.HEADS.items():
    np.testing.assert_allclose(probabilities[ours], expected[f"probabilities_{theirs[4:]}"], rtol=0, atol=1e-5)
  assert features.shape == (3, 10)  # forward and backward states of 5 units
  np.testing.assert_allclose(features, expected["features"], rtol=0, atol=1e-5)


def test_report_takes_it_for_a_sprites_judge_with_no_test_accuracy_recorded():
  judge = cdsvae_judge.load(os.path.join(FIXTURE, "judge.tar"))
  data = types.SimpleNamespace(name="sprites", variant=None)
  run = types.SimpleNamespace(config=types.SimpleNamespace(data=data), image_shape=(64, 64, 3))
  assert judges.weak_heads(judge) == {} and report.check_judge(judge, run, allow_weak_judge=False) == []


def test_videos_shorter_than_the_judges_eight_frames_are_refused(expected):
  judge = cdsvae_judge.load(os.path.join(FIXTURE, "judge.tar"))
  with pytest.raises(judges.JudgeError, match="forward LSTM at frame 8; the videos have 7"):
    judge.predict(expected["videos"][:, :7] / 255.0)


@pytest.mark.parametrize("name", ["views.tar", "views_legacy.tar"])
def test_the_reader_honours_storage_offsets_and_strides(name):
  saved = torch_files.load(os.path.join(FIXTURE, name))
  base = np.arange(20, dtype=np.float32).reshape(4, 5)
  np.testing.assert_array_equal(saved["base"], base)
  np.testing.assert_array_equal(saved["transposed"], base.T)
  np.testing.assert_array_equal(saved["window"], base[1:, 2:])
  assert saved["count"].dtype == np.int64 and saved["count"].shape == () and saved["count"] == 7


def one_line_error(error_type, call, *args) -> str:
  with pytest.raises(error_type) as raised:
    call(*args)
  assert "\n" not in str(raised.value)
  return str(raised.value)


def test_a_file_that_is_not_torchs_is_refused(tmp_path):
  path = tmp_path / "notes.tar"
  path.write_text("not a checkpoint\n")
  message = one_line_error(torch_files.TorchFileError, torch_files.load, str(path))
  assert message.startswith(f"{path} is not a torch.save file: expected a zip archive holding <name>/data.pkl")
  assert one_line_error(judges.JudgeError, judges.load, f"cdsvae:{path}") == message


class MakesAFolder:
  """Unpickling this would create a folder: what a hostile checkpoint could run."""

  def __init__(self, folder: str):
    self.folder = folder

  def __reduce__(self):
    return os.mkdir, (self.folder,)


def legacy_stream(payload: bytes) -> bytes:
  head = [torch_files.LEGACY_MAGIC, pickle.dumps(torch_files.LEGACY_PROTOCOL_VERSION, protocol=2)]
  return b"".join(head + [pickle.dumps({"little_endian": True}, protocol=2), payload])


@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_a_class_that_a_state_dict_does_not_need_is_refused_unrun(tmp_path, container):
  folder = tmp_path / "made_by_the_file"
  payload = pickle.dumps({"state_dict": MakesAFolder(str(folder))}, protocol=2)
  path = tmp_path / "hostile.tar"
  if container == "zip":
    with zipfile.ZipFile(path, "w") as archive:
      archive.writestr("hostile/data.pkl", payload)
  else:
    path.write_bytes(legacy_stream(payload))
  message = one_line_error(torch_files.TorchFileError, torch_files.load, str(path))
  assert message.startswith(f"{path} holds {os.mkdir.__module__}.mkdir, which a state dict does not need")
  assert one_line_error(judges.JudgeError, judges.load, f"cdsvae:{path}") == message
  assert not folder.exists()


def test_a_missing_file_names_the_path_and_where_to_get_the_judge(tmp_path):
  path = tmp_path / "sprite_judge.tar"
  message = one_line_error(judges.JudgeError, judges.load, f"cdsvae:{path}")
  assert message == (
      f"No C-DSVAE judge at {path}: get sprite_judge.tar from JunwenBai/C-DSVAE (its README's Sprites judge link) "
      "or azencot-group/SPYL (cdsvae/sprite_judge.tar)."
  )


def test_a_torch_file_of_other_weights_is_not_taken_for_the_judge():
  message = one_line_error(judges.JudgeError, judges.load, f"cdsvae:{os.path.join(FIXTURE, 'views.tar')}")
  assert message.endswith("is not C-DSVAE's Sprites judge: its state dict lacks 'encoder.c1.main.0.weight'.")
