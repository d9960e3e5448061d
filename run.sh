#!/usr/bin/env bash
# facenet-tf on a fresh machine. Creates .venv (Python 3.11, tensorflow-cpu) on first use, then:
#   ./run.sh          the main job (see README "Quick start")
#   ./run.sh test     the test suite (what CI runs)
#   ./run.sh slow     the full-size tests (pytest -m slow)
set -euo pipefail
cd "$(dirname "$0")"
export TF_ENABLE_ONEDNN_OPTS=1 TF_CPP_MIN_LOG_LEVEL=2 PIP_DISABLE_PIP_VERSION_CHECK=1

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Installs or confirms the pinned dependencies (a no-op when they are already there).
.venv/bin/python -m pip install -q -e ".[cpu,dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import facenet_tf, tensorflow" || { echo "install failed" >&2; exit 1; }

case "${1:-main}" in
  main)
    # 1. the zoo: params and multiply-adds of every model beside the paper's
    .venv/bin/python experiments/zoo.py
    # 2. a short triplet training of nns2 on LFW minus every View 1 test identity (resumes if run again)
    .venv/bin/python experiments/train.py --config=nns2_lfw_view1 --quick --workdir=runs/main_nns2_quick
    # 3. LFW View 1 (thresholds on DevTrain, accuracy on DevTest) of that model, then of the pretrained
    #    Inception-ResNet-v1 with MTCNN alignment (margin 0.2, chosen on View 1)
    .venv/bin/python experiments/eval_lfw.py --model=runs/main_nns2_quick --pairs=view1 --alignment=center \
        --crop_size=140 --output_dir=runs/main_eval_nns2_quick
    .venv/bin/python experiments/eval_lfw.py --model=inception_resnet_v1 --weights=msceleb --pairs=view1 \
        --alignment=detect --margin=0.2 --output_dir=runs/main_eval_inception_resnet_v1
    ;;
  test)
    shift || true
    .venv/bin/python -m pytest -q "$@"
    ;;
  slow)
    shift || true
    .venv/bin/python -m pytest -q -m slow "$@"
    ;;
  *)
    echo "usage: ./run.sh [main|test|slow] [pytest args]" >&2; exit 2
    ;;
esac
