# The two commands of the README: `make demo` and `make test`. Each sets up everything it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the real-browser tests (never `playwright install`: no downloads at test time), and
# Debian's ffmpeg for ffprobe, which the export tests use as an independent reader of what was written.
browser:
	@command -v chromium >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium ffmpeg >/dev/null) || echo "chromium/ffmpeg not installed: browser tests skip, export tests read with PyAV only"; \
	  else echo "chromium or ffprobe missing and not root: browser tests skip, export tests read with PyAV only"; fi; }

demo: install
	mkdir -p out
	$(BIN)/anonlab anonymize sample_media/street.mp4 -o out/street_anonymized.mp4 --report out/street_report.json --regions-out out/street_regions.jsonl --overwrite
	$(BIN)/anonlab anonymize sample_media/portrait.jpg -o out/portrait_anonymized.jpg --report out/portrait_report.json --overwrite
	$(BIN)/anonlab verify sample_media/street.mp4 out/street_anonymized.mp4
	$(BIN)/anonlab verify sample_media/portrait.jpg out/portrait_anonymized.jpg

test: install browser
	$(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) out .pytest_cache
