"""What people write, read end to end by a briefly trained `--preset robust` model (its
digit model and its finder): numbers written apart and across a ruled line, and letters
and signs that are not digits,
through `relunet predict`, `evaluate --images`, the exported `serving_bytes` signature
over TF Serving's REST API, and the drawing page in a real browser."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from drawings import png, strokes
from helpers import call, headless_chromium, run_cli_cases, serving

from relunet.inference.export import export_saved_model
from relunet.training.model import load_model

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
NONE = "not a digit"
# name: (what is written, how, what it reads); the ruled line crosses the whole page
# through the digits' lower third. A 7 touching a 1, a 10 whose 1 leans over its 0 and a
# question mark are not read reliably yet: benchmarks/bench_written.py measures them.
WRITTEN = {
    "42": ("42", {}, "42"),
    "2026": ("2026", {}, "2026"),
    "2026-ruled": ("2026", {"ruled": True}, "2026"),
    "A": ("A", {}, NONE),
    "R": ("R", {}, NONE),
    "k": ("k", {}, NONE),
    "X": ("X", {}, NONE),
    "star": ("star", {}, NONE),
}
NUMBERS = [name for name, (_, _, reads) in WRITTEN.items() if reads != NONE]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """WRITTEN as PNG files, dark ink on light paper: <name>.png."""
    folder = tmp_path_factory.mktemp("written")
    for name, (text, how, _) in WRITTEN.items():
        (folder / f"{name}.png").write_bytes(png(text, **how))
    return folder


@pytest.mark.slow
def test_predict_reads_numbers_and_says_not_a_digit_for_letters_and_signs(reader_run, written):
    files = [f"{name}.png" for name in WRITTEN]
    model = str(reader_run / "best.keras")
    plain, as_json = run_cli_cases(
        [
            (["predict", "--model", model, *files], written),
            (["predict", "--model", model, "--json", *files], written),
        ]
    )
    assert plain.returncode == 0 and as_json.returncode == 0, plain.stderr + as_json.stderr
    said = {line.split()[0][: -len(".png")]: line for line in plain.stdout.splitlines()}
    assert said["42"].split()[1:3] == ["42", "(p=" + said["42"].split("(p=")[1].split()[0]]
    read = {name: said[name].split(None, 1)[1] for name in WRITTEN}
    assert {n: r.startswith(WRITTEN[n][2]) for n, r in read.items()} == dict.fromkeys(
        WRITTEN, True
    ), read
    answers = {a["input"][: -len(".png")]: a for a in json.loads(as_json.stdout)}
    assert {n: answers[n]["digits"] for n in WRITTEN} == {
        n: ("" if reads == NONE else reads) for n, (_, _, reads) in WRITTEN.items()
    }
    assert {n: answers[n]["not_a_digit"] for n in WRITTEN} == {
        n: reads == NONE for n, (_, _, reads) in WRITTEN.items()
    }
    assert all(answers[n]["class"] is None for n in WRITTEN)  # not exactly one digit
    per_digit = answers["2026"]["per_digit"]
    assert [d["class"] for d in per_digit] == [2, 0, 2, 6]
    lefts = [d["box"][1] for d in per_digit]
    assert lefts == sorted(lefts) and all(0.5 < d["probability"] <= 1 for d in per_digit)


@pytest.mark.slow
def test_evaluate_images_scores_numbers_digits_and_what_should_read_as_nothing(
    reader_run, written, tmp_path
):
    folder = tmp_path / "folder"
    for name in ("42", "2026"):
        (folder / name).mkdir(parents=True)
        (folder / name / "a.png").write_bytes((written / f"{name}.png").read_bytes())
    (folder / "none").mkdir()
    for name in ("X", "star"):
        (folder / "none" / f"{name}.png").write_bytes((written / f"{name}.png").read_bytes())
    (folder / "4").mkdir()  # a number with a wrong label: two digits read, one expected
    (folder / "4" / "42.png").write_bytes((written / "42.png").read_bytes())
    (folder / "-42").mkdir()  # a sign expected and not written: its digits right
    (folder / "-42" / "42.png").write_bytes((written / "42.png").read_bytes())
    report = tmp_path / "report"
    (evaluated,) = run_cli_cases(
        [
            (
                [
                    "evaluate",
                    "--model",
                    str(reader_run),
                    "--images",
                    str(folder),
                    "--json",
                    "--report",
                    str(report),
                ],
                tmp_path,
            )
        ]
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    result = json.loads(evaluated.stdout)
    assert result["examples"] == 6
    assert result["accuracy"] == pytest.approx(2 / 4)  # 42 and 2026 right, "4" and "-42" not
    # "4" matches 42's first digit, its 2 a digit read beyond those written (1 of 2);
    # "-42" its two: the sign is not a digit
    assert result["digit_accuracy"] == pytest.approx(9 / 10)
    assert result["none"] == {"images": 2, "answered": 2}
    assert (report / "reliability.png").is_file()


@pytest.fixture(scope="module")
def reader_server(reader_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reader-served") / "relunet"
    export_saved_model(load_model(str(reader_run / "best.keras")), folder, verbose=False)
    with serving(folder) as served:
        yield served


@pytest.mark.slow
def test_serving_bytes_answers_the_number_its_digits_and_not_a_digit(reader_server, written):
    instances = [
        {"b64": base64.b64encode((written / f"{n}.png").read_bytes()).decode()} for n in WRITTEN
    ]
    url = f"{reader_server['base']}/v1/models/relunet:predict"
    status, answer = call(url, {"signature_name": "serving_bytes", "instances": instances})
    assert status == 200, answer
    predictions = dict(zip(WRITTEN, answer["predictions"], strict=True))
    assert {n: predictions[n]["number"] for n in WRITTEN} == {
        n: ("" if reads == NONE else reads) for n, (_, _, reads) in WRITTEN.items()
    }
    assert {n: predictions[n]["not_a_digit"] for n in WRITTEN} == {
        n: reads == NONE for n, (_, _, reads) in WRITTEN.items()
    }
    assert {n: predictions[n]["digit_count"] for n in NUMBERS} == {
        n: len(WRITTEN[n][2]) for n in NUMBERS
    }
    assert predictions["2026"]["digits"] == [2, 0, 2, 6, -1, -1, -1, -1]
    assert all(p["class"] == -1 for p in predictions.values())


# Digits drawn as mouse strokes on the 560x280 canvas: (pen width, strokes), each stroke
# a list of points as offsets from the canvas's centre. Thin and thick, small and off
# centre, as people draw them; then a number and a letter drawn with the tests' glyphs.
DRAWN = {
    "1": (6, [[(-70, -100), (-75, -60), (-80, -20)]]),  # thin and small, top left
    "7": (36, [[(-70, -90), (70, -90), (30, -20), (0, 100)]]),  # thick, across the canvas
    "0": (14, [[(70, 60 - 55), (105, 60), (70, 115), (35, 60), (70, 5)]]),
    "42": (16, strokes("42", 150)),
    "not a digit": (16, strokes("X", 150)),
}


def _draw(browser, canvas, pen, lines):
    from selenium.webdriver.common.action_chains import ActionChains

    browser.execute_script(f"document.getElementById('pen').value = {pen};")
    for points in lines:
        (x, y), *rest = [(round(x), round(y)) for x, y in points]
        chain = ActionChains(browser).move_to_element_with_offset(canvas, x, y).click_and_hold()
        for nx, ny in rest:
            chain = chain.move_by_offset(nx - x, ny - y)
            x, y = nx, ny
        chain.release().perform()


@pytest.mark.slow
def test_the_page_reads_digits_a_number_and_a_letter(reader_server):
    """Drawn with the mouse in a real browser."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with headless_chromium() as browser:

        def answer():
            return browser.find_element(By.ID, "answer").text

        def settled():  # the page's answer to the drawing, once it stops changing
            seen = []

            def same_twice(b):
                seen.append(answer())
                return len(seen) > 3 and seen[-1] == seen[-2] == seen[-3] != "-" and seen[-1]

            time.sleep(0.3)
            return WebDriverWait(browser, 30, poll_frequency=0.2).until(same_twice)

        browser.get(reader_server["base"] + "/")
        canvas = browser.find_element(By.ID, "canvas")
        clear = browser.find_element(By.ID, "clear")
        assert answer() == "-"
        read = {}
        for expected, (pen, lines) in DRAWN.items():
            clear.click()
            _draw(browser, canvas, pen, lines)
            read[expected] = settled()
            if expected == "7":  # one digit: its ten bars, the winner's as wide as its p
                drawn, track = browser.execute_script(
                    "const bar = document.getElementById('bar7');"
                    "return [bar.getBoundingClientRect().width,"
                    "        bar.parentElement.getBoundingClientRect().width];"
                )
                assert drawn > track / 2 > 0
            if expected == "42":  # several: each digit with its p, and no bars
                ARTIFACTS.mkdir(exist_ok=True)
                browser.save_screenshot(str(ARTIFACTS / "serve_page.png"))
                shown = browser.find_element(By.ID, "digits").text
                assert shown.split()[::2] == ["4", "2"], shown
                widths = browser.execute_script(
                    "return [...document.querySelectorAll('.bar')].map(b => b.style.width);"
                )
                assert set(widths) == {"0%"}
        assert read == {expected: expected for expected in DRAWN}
        assert browser.find_element(By.ID, "error").text == ""
        clear.click()
        time.sleep(1.0)  # an answer still on its way must not come back
        assert answer() == "-" and browser.find_element(By.ID, "digits").text == ""
