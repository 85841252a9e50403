"""Options declared once (tapos.data.options): the defaults dict, the click options with their
help and default, and the validated config object all come from one declaration."""
import dataclasses
import re
from dataclasses import dataclass
from typing import Optional

import click
import pytest
from click.testing import CliRunner

from tapos.data.errors import TaposError
from tapos.data.machinery.fetch import FetchConfig
from tapos.data.options import Config, OptionError, option
from tapos.data.synth import DEFAULTS as SYNTH_DEFAULTS
from tapos.data.synth import SynthConfig
from tapos.parse.run import RUN_DEFAULTS, TrainConfig


@dataclass(frozen=True)
class Toy(Config):
    WHAT = "toy"

    rate: float = option(0.5, "Share of the rows kept.", type=click.FloatRange(0, 1))
    num_workers: int = option(2, "Worker processes.", flag="--workers")
    fast: bool = option(False, "Skip the slow check.")
    sizes: list = option([3, 4], "Sizes tried.", cli=False)
    name: Optional[str] = option(None, "A name.")


@click.command()
@Toy.click_options()
def toy(**options):
    click.echo(repr(sorted(Toy.of(options).as_dict().items())))


def test_generated_options_carry_the_declared_flag_default_and_help():
    params = {p.name: p for p in toy.params}
    assert list(params) == ["rate", "num_workers", "fast", "name"]  # declaration order, no cli=False field
    assert params["num_workers"].opts == ["--workers"] and params["rate"].opts == ["--rate"]
    for name, p in params.items():
        declared = Toy.__dataclass_fields__[name]
        assert p.default == Toy.defaults()[name] and p.help == declared.metadata["help"] and p.show_default is True
    assert params["fast"].is_flag and isinstance(params["rate"].type, click.FloatRange)
    out = CliRunner().invoke(toy, ["--help"]).output
    assert re.search(r"--workers INTEGER\s+Worker processes.\s+\[default: 2\]", out)
    assert re.search(r"--rate FLOAT RANGE\s+Share of the rows kept.\s+\[default: 0.5; 0<=x<=1\]", out)
    run = CliRunner().invoke(toy, ["--workers", "5", "--fast"])
    assert run.exit_code == 0, run.output
    assert run.output.strip() == repr(sorted({"rate": 0.5, "num_workers": 5, "fast": True, "sizes": [3, 4],
                                              "name": None}.items()))
    assert CliRunner().invoke(toy, ["--rate", "2"]).exit_code == 2  # the declared type checks the value


def test_unknown_option_is_refused_with_a_suggestion():
    with pytest.raises(OptionError, match=r"^toy: unknown option\(s\) num_worker \(known: rate, num_workers, fast, "
                                          r"sizes, name\); did you mean num_workers\?$"):
        Toy.of(num_worker=3)
    with pytest.raises(OptionError, match=r"^training: unknown option\(s\) sede .*; did you mean seed\?$"):
        TrainConfig.of({"sede": 1})
    with pytest.raises(OptionError, match=r"did you mean jobs\?"):
        FetchConfig.of(FetchConfig(), job=2)
    # a synthetic dataset's other options are generator settings, checked against its DEFAULTS
    with pytest.raises(OptionError, match=r"^synthetic dataset: unknown option\(s\) fisrt_shot_max .*did you mean "
                                          r"first_shot_max\?$"):
        SynthConfig.of(seed=1, fisrt_shot_max=1.0)


def test_library_functions_refuse_a_misspelt_option_before_any_work(tmp_path, annotation_file):
    from tapos.data.machinery.fetch import fetch_videos

    with pytest.raises(TaposError, match="did you mean jobs"):
        fetch_videos(annotation_file, tmp_path / "out", job=2)
    assert not (tmp_path / "out").exists()


def test_config_round_trips_to_the_defaults_dict():
    for cls, change in ((Toy, {"rate": 0.25}), (TrainConfig, {"seed": 7}), (SynthConfig, {"seed": 7}),
                        (FetchConfig, {"jobs": 7})):
        defaults = cls.defaults()
        assert cls().as_dict() == defaults and cls.of(defaults).as_dict() == defaults
        changed = cls.of(defaults, **change)
        assert cls.of(changed.as_dict()) == changed == cls.of(changed) and changed != cls()
    a, b = Toy(), Toy()
    a.sizes.append(5)
    assert b.sizes == Toy.defaults()["sizes"] == [3, 4]  # a mutable default is never shared
    assert {k: RUN_DEFAULTS[k] for k in TrainConfig.defaults()} == TrainConfig.defaults()


def test_synth_options_route_generator_settings():
    config = SynthConfig.of(seed=3, dim=16, first_shot_max=1.0, settings={"annotators": 2, "dim": 8})
    assert config.seed == 3 and config.settings == {"annotators": 2, "dim": 8, "first_shot_max": 1.0}
    assert config.overrides() == {"annotators": 2, "dim": 16, "first_shot_max": 1.0}  # --dim wins over --set dim
    assert set(config.settings) <= set(SYNTH_DEFAULTS)


@pytest.mark.parametrize("command, cls", [(("tapos-data", "synth"), SynthConfig),
                                          (("tapos-data", "fetch-videos"), FetchConfig),
                                          (("tapos-parse", "train"), TrainConfig)])
def test_commands_show_every_declared_option_with_its_help(command, cls):
    from tapos.data.cli import main as data_main
    from tapos.parse.cli import main as parse_main

    group = {"tapos-data": data_main, "tapos-parse": parse_main}[command[0]]
    out = CliRunner().invoke(group, [command[1], "--help"]).output
    flat = re.sub(r"\s+", "", out)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if meta["cli"]:
            flag = (meta["flag"] or "--" + f.name.replace("_", "-")).split("/")[0]
            assert re.sub(r"\s+", "", meta["help"]) in flat and f"{flag} " in out, (command, f.name)
        else:
            assert "--" + f.name.replace("_", "-") not in out, (command, f.name)
