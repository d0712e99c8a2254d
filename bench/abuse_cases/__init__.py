"""Issue 12's abuse cases, one module per class of the reliability issue; ``bench/abuse.py`` runs
them. :mod:`.harness` runs a child process and judges it, :mod:`.inputs` builds the shared and the
hostile files; :data:`ALL_CASES` names each case, its input and command, in the order of the
report."""

from . import garbage, handled, hangs, paths, resources, rough
from .harness import Case, Context
from .inputs import Inputs, build_inputs
from .verdicts import Verdict

__all__ = ["ALL_CASES", "Case", "Context", "Inputs", "Verdict", "build_inputs"]

RESOURCES = "Resources bounded by the input"
GARBAGE = "No silent garbage"
PATHS = "Paths: never replace what is not ours"
HANGS = "Nothing hangs, nothing is a traceback"
ROUGH = "Rough edges of the main workflows"
HANDLED = "Already handled (regression guard)"

ALL_CASES = (
    Case(RESOURCES, "channels-65536-info", "model file declaring WN n_channels=65536", "info wide.pt", resources.channels_65536_info),
    Case(RESOURCES, "channels-65536-synthesize", "the same file", "synthesize -c wide.pt mel.npy", resources.channels_65536_synthesize),
    Case(RESOURCES, "wn-2048x8-info", "model file declaring a 2048-layer x 8-channel WN", "info deep.pt", resources.wn_2048_layers_info),
    Case(RESOURCES, "flows-1e7-info", "model file declaring n_flows=10^7", "info flows.pt", resources.flows_1e7_info),
    Case(RESOURCES, "flows-1e7-synthesize", "the same file", "synthesize -c flows.pt mel.npy", resources.flows_1e7_synthesize),
    Case(RESOURCES, "zip-bomb-checkpoint", "deflated zip .pt: 1024 storages of 2 MiB of zeros, each smaller than the file", "info bomb.pt", resources.zip_bomb_checkpoint),
    Case(RESOURCES, "zip-bomb-mel", "deflated zip .pt mel: (8, 2^26) zeros, 2 GiB", "synthesize -c tiny.pt bomb.pt", resources.zip_bomb_mel),
    Case(RESOURCES, "npy-header-lies", ".npy header declaring (8, 10^11) over 1 KB", "synthesize -c tiny.pt liar.npy", resources.npy_header_lies),
    Case(RESOURCES, "tensor-call-in-pickle", "2.5 KB: torch.Tensor(5e8) posing as the weights of a 7000-channel WN", "synthesize -c padded.pt mel.npy", resources.tensor_call_in_pickle),
    Case(RESOURCES, "encode-bomb", "protocol-2 bytes: one 1 MiB string encoded 4000 times", "info copies.pt", resources.encode_bomb),
    Case(RESOURCES, "broadcast-weights", "stride-0 tensors posing as a 4096-channel WN", "info broadcast.pt", resources.broadcast_weights),
    Case(GARBAGE, "nan-weights", "checkpoint whose weights are NaN", "synthesize -c nan.pt mel.pt", garbage.nan_weights),
    Case(GARBAGE, "api-nan-mel", "mel with a NaN", "model.infer(mel)", garbage.api_nan_mel),
    Case(GARBAGE, "api-nan-sigma", "sigma=NaN", "model.infer(mel, sigma=nan)", garbage.api_nan_sigma),
    Case(GARBAGE, "api-nan-z", "z with a NaN", "model.infer(mel, z=z)", garbage.api_nan_z),
    Case(GARBAGE, "save-wav-nan", "audio with NaN", "save_wav(path, audio, 22050)", garbage.save_wav_nan),
    Case(GARBAGE, "save-wav-2xN", "a (2, 1000) array", "save_wav(path, audio, 22050)", garbage.save_wav_two_channels),
    Case(GARBAGE, "mel-1e30", "mel of 1e30", "synthesize -c tiny.pt loud.npy", garbage.mel_of_1e30),
    Case(GARBAGE, "float-wav-peak-5", "float wav peaking at +-5", "synthesize -c tiny.pt hot.wav", garbage.float_wav_peak_5),
    Case(GARBAGE, "learning-rate-1e6", "2 good steps, then --resume at learning_rate=1e6", "train --resume --set train.learning_rate=1e6", garbage.destructive_learning_rate),
    Case(PATHS, "convert-onto-null", "DST: a char device node (1, 3), a copy of /dev/null", "convert tiny.pt node", paths.convert_onto_null),
    Case(PATHS, "convert-onto-full", "DST: a copy of /dev/full (1, 7)", "convert tiny.pt node", paths.convert_onto_full),
    Case(PATHS, "export-ts-onto-null", "OUT: a copy of /dev/null", "export --format torchscript tiny.pt node", paths.export_torchscript_onto_null),
    Case(PATHS, "export-onnx-onto-null", "OUT: a copy of /dev/null", "export --format onnx tiny.pt node", paths.export_onnx_onto_null),
    Case(PATHS, "mel-onto-null", "mels/clip.pt is a copy of /dev/null", "mel clip.wav -o mels", paths.mel_onto_null),
    Case(PATHS, "convert-onto-directory", "DST: a directory", "convert tiny.pt target/", paths.convert_onto_directory),
    Case(PATHS, "export-onto-directory", "OUT: a directory", "export --format torchscript tiny.pt target/", paths.export_onto_directory),
    Case(PATHS, "umask-modes", "umask 027, .pt and .safetensors outputs", "convert tiny.pt model.{pt,safetensors}", paths.modes_follow_umask),
    Case(PATHS, "sigterm-synthesis", "SIGTERM while a long file streams", "synthesize -c tiny.pt long_mel.npy; kill -TERM", paths.sigterm_during_synthesis),
    Case(PATHS, "kill-9-then-next-run", "kill -9 while a long file streams, then a run in that folder", "synthesize ...; kill -9; synthesize ... -o out", paths.kill_9_then_next_run),
    Case(PATHS, "enospc-mid-batch", "4 mels of 80 KB into a 200 KB tmpfs", "synthesize --batch-size 2 m0..m3.npy -o disk", paths.full_disk_mid_batch),
    Case(PATHS, "enospc-streamed", "one long file streamed into a 200 KB tmpfs", "synthesize long_mel.npy -o disk", paths.full_disk_streamed),
    Case(PATHS, "enospc-mels", "4 mels of ~60 KB into a 200 KB tmpfs", "mel c0..c3.wav -o disk", paths.full_disk_mels),
    Case(PATHS, "evaluate-unreadable-clip", "2 good clips and a corrupt one", "evaluate -c tiny.pt clips/ --baseline none", paths.evaluate_unreadable_clip),
    Case(PATHS, "evaluate-short-clip", "2 good clips and one of 44 samples", "evaluate -c tiny.pt clips/ --baseline none", paths.evaluate_short_clip),
    Case(PATHS, "evaluate-all-bad", "only a corrupt clip", "evaluate -c tiny.pt clips/ --baseline none", paths.evaluate_all_clips_bad),
    Case(HANGS, "corrupt-training-folder", "8 corrupt wavs, 2 workers", "train --data corrupt/ --set train.num_workers=2", hangs.corrupt_training_folder),
    Case(HANGS, "resume-other-wn-size", "a run of WN 8 channels resumed with 16", "train --resume --set ...n_channels=16", hangs.resume_another_wn_size),
    Case(HANGS, "metadata-json-list", "safetensors metadata '[1, 2]'", "info list.safetensors", hangs.metadata_not_an_object),
    Case(HANGS, "metadata-not-json", "safetensors metadata '{oops'", "info text.safetensors", hangs.metadata_not_json),
    Case(HANGS, "set-value-abc", "train_config.batch_size=abc", "train --set train_config.batch_size=abc", hangs.unparsable_set_value),
    Case(HANGS, "set-value-bool", "train_config.iters_per_log=true", "train --set train_config.iters_per_log=true", hangs.boolean_set_value),
    Case(HANGS, "info-head-1", "stdout's reader gone", "info demo \\| head -1", hangs.info_into_closed_pipe),
    Case(HANGS, "api-int-mel", "int64 mel tensor", "model.infer(mel)", hangs.api_int_mel),
    Case(HANGS, "api-fp64-mel", "float64 mel tensor", "model.infer(mel)", hangs.api_fp64_mel),
    Case(HANGS, "api-numpy-mel", "numpy float64 mel", "model.infer(mel)", hangs.api_numpy_mel),
    Case(HANGS, "api-list-mel", "nested list mel", "model.infer(mel)", hangs.api_list_mel),
    Case(HANGS, "api-string-mel", "a string as the mel", "model.infer('mel.npy')", hangs.api_string_mel),
    Case(HANGS, "api-cuda", "device='cuda' without CUDA", "waveglow.load('demo', device='cuda')", hangs.api_cuda_without_cuda),
    Case(HANGS, "cli-cuda", "--device cuda without CUDA", "synthesize --device cuda", hangs.cli_cuda_without_cuda),
    Case(HANGS, "api-80-bins", "an 80-bin mel for an 8-bin model", "model.infer(mel)", hangs.api_wrong_channels),
    Case(HANGS, "api-unbatched-mel", "a (M, F) mel without its batch axis", "model.infer(mel)", hangs.api_unbatched_mel),
    Case(HANGS, "complex-npy-mel", "a complex64 .npy mel", "synthesize -c tiny.pt complex.npy", hangs.complex_npy_mel),
    Case(HANGS, "train-empty-folder", "--data: an empty folder", "train --data empty/", hangs.train_empty_folder),
    Case(HANGS, "train-missing-data", "--data: no such path", "train --data nowhere", hangs.train_missing_data),
    Case(HANGS, "info-directory", "CKPT: a directory", "info model.pt/", hangs.info_of_a_directory),
    Case(ROUGH, "long-input-progress", "one mel of 73 s of audio", "synthesize -c tiny.pt long_mel.npy", rough.long_input_progress),
    Case(ROUGH, "resume-after-max-iters", "a run of --max-iters 1, resumed", "train -o run --resume", rough.resume_after_max_iters),
    Case(ROUGH, "init-from-demo-set", "--init-from demo with a WN width", "train --init-from demo --set ...n_channels=32", rough.init_from_demo_with_set),
    Case(ROUGH, "info-demo-facts", "the bundled model", "info demo", rough.info_demo_facts),
    Case(ROUGH, "model-file-paths", "a model converted from a training checkpoint", "convert run/waveglow_1.pt m.safetensors; info", rough.model_file_has_no_machine_path),
    Case(ROUGH, "convert-help", "", "convert --help", rough.convert_help_names),
    Case(ROUGH, "docs-training", "docs/training.md", "(read)", rough.training_docs),
    Case(ROUGH, "readme-nvidia-pages", "README.md", "(read)", rough.readme_names_nvidia_pages),
    Case(HANDLED, "missing-checkpoint", "no such file", "info nothing.pt", handled.missing_checkpoint),
    Case(HANDLED, "empty-checkpoint", "0 bytes", "info empty.pt", handled.empty_checkpoint),
    Case(HANDLED, "truncated-checkpoint", "the first half of a model", "info cut.pt", handled.truncated_checkpoint),
    Case(HANDLED, "text-checkpoint", "a text file", "info notes.pt", handled.text_as_checkpoint),
    Case(HANDLED, "hostile-pickle-checkpoint", "a pickle calling os.system", "info evil.pt", handled.hostile_pickle_checkpoint),
    Case(HANDLED, "hostile-pickle-mel", "a .pt mel calling os.system", "synthesize -c tiny.pt evil.pt", handled.hostile_pickle_mel),
    Case(HANDLED, "another-model", "a state dict of another network", "info net.pt", handled.checkpoint_of_another_model),
    Case(HANDLED, "mel-80-channels", "an 80-bin mel for an 8-bin model", "synthesize -c tiny.pt m80.npy", handled.mel_wrong_channels),
    Case(HANDLED, "mel-nan-file", "a .npy mel of NaN", "synthesize -c tiny.pt nan.npy", handled.mel_with_nan_file),
    Case(HANDLED, "mel-no-frames", "a (8, 0) mel", "synthesize -c tiny.pt none.npy", handled.mel_without_frames),
    Case(HANDLED, "corrupt-audio", "4 KB of random bytes as .wav", "synthesize -c tiny.pt noise.wav", handled.corrupt_audio_input),
    Case(HANDLED, "one-bad-among-good", "mel.pt, bad.npy, clip.wav", "synthesize -c tiny.pt mel.pt bad.npy clip.wav", handled.one_bad_file_among_good),
    Case(HANDLED, "input-directory", "a directory named folder.npy", "synthesize -c tiny.pt folder.npy", handled.input_is_a_directory),
    Case(HANDLED, "output-dir-is-file", "-o names a file", "synthesize ... -o out", handled.output_dir_is_a_file),
    Case(HANDLED, "negative-sigma", "--sigma -1", "synthesize --sigma -1", handled.negative_sigma),
    Case(HANDLED, "unknown-config-key", "train.batch_sise=3", "train --set train.batch_sise=3", handled.unknown_config_key),
    Case(HANDLED, "config-not-json", "config.json with single quotes", "train --config config.json", handled.config_not_json),
    Case(HANDLED, "resume-nothing", "an empty output folder", "train --resume -o fresh", handled.resume_without_checkpoint),
    Case(HANDLED, "nemo-not-tar", "random bytes as model.nemo", "info model.nemo", handled.nemo_not_a_tar),
    Case(HANDLED, "kill-9-training-resume", "kill -9 after the first checkpoint, then --resume", "train ...; kill -9; train --resume", handled.kill_9_training_then_resume),
)  # fmt: skip
