#!/bin/bash
# Step 1 (anon-and-split): blur the faces of an uploaded image, or split an uploaded video into frames
# (FRAMES_PER_MINUTE of them per minute of video) and blur each one. OSCAR gives the downloaded file as
# $INPUT_FILE_PATH and uploads whatever is left in $TMP_OUTPUT_DIR to the output bucket.
set -euo pipefail

file_name=$(basename "$INPUT_FILE_PATH")
stem=${file_name%.*}
out_dir="$TMP_OUTPUT_DIR/$stem"   # one folder per upload keeps frames of different videos apart
mkdir -p "$out_dir"

case "${file_name,,}" in
    *.mp4 | *.avi | *.mov | *.mkv | *.webm)
        echo "splitting $file_name at ${FRAMES_PER_MINUTE:-12} frames per minute"
        ffmpeg -loglevel error -i "$INPUT_FILE_PATH" -vf "fps=${FRAMES_PER_MINUTE:-12}/60" "$out_dir/frame-%04d.jpg"
        ;;
    *)
        cp "$INPUT_FILE_PATH" "$out_dir/$file_name"
        ;;
esac

for frame in "$out_dir"/*; do
    python auto_blur_image.py -i "$frame" -o "$frame"   # in the image's working directory
done
echo "anonymised $(find "$out_dir" -type f | wc -l) image(s) of $file_name"
