from livervae.paths import DATA_DIR_ENV, real_case_dir, repo_root, shared_data_dir


def test_default_is_next_to_the_repository(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert shared_data_dir() == (repo_root().parent / "shared" / "data").resolve()
    assert (repo_root() / "pyproject.toml").is_file()


def test_environment_variable_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert shared_data_dir() == tmp_path.resolve()
    assert real_case_dir() == tmp_path.resolve() / "3dircadb1_17"
