#!/bin/bash
# Step 2 (mask-detector): mark the faces with and without a mask on one anonymised frame. The frame's
# folder in the intermediate bucket (one per original upload) is kept in the result bucket.
set -euo pipefail

upload=$(basename "$(dirname "$STORAGE_OBJECT_KEY")")
mkdir -p "$TMP_OUTPUT_DIR/$upload"
output="$TMP_OUTPUT_DIR/$upload/$(basename "$INPUT_FILE_PATH")"

python mask-detector-image.py --image "$INPUT_FILE_PATH" --output "$output"   # in the image's working directory
echo "checked $(basename "$INPUT_FILE_PATH") of $upload"
