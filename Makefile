# The two commands a newcomer runs: `make demo` (generate -> train -> reconstruct -> evaluate) and `make test`.
# Both set the machine up first (scripts/setup.sh): .venv with torch 2.14.1 and the package, plus libusb.
.PHONY: demo test setup lint

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@GANSVR_WITH_CHROMIUM=1 bash scripts/setup.sh
	.venv/bin/python -m pytest -q tests

lint: setup
	.venv/bin/ruff check gansvr_ns tests scripts
