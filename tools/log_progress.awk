# Condense an mmengine training log, as it streams, to one line per epoch (the epoch's last
# logged loss and the ETA of the whole run) and one line per validation.
#   tools/train.py CONFIG 2>&1 | tee train.log | awk -v label=ce -f tools/log_progress.awk
# The total epoch count is read from the logged config (`max_epochs=N`).

function field(line, name,    value) {
    # the value after "name: " (a name preceded by a blank, so "loss" does not match "x_loss")
    if (!match(line, " " name ": *[^ ]+"))
        return "?"
    value = substr(line, RSTART, RLENGTH)
    sub(" " name ": *", "", value)
    return value
}

function epoch_of(line, kind,    tag) {
    match(line, "Epoch\\(" kind "\\) *\\[[0-9]+\\]")
    tag = substr(line, RSTART, RLENGTH)
    sub("^Epoch\\(" kind "\\) *\\[", "", tag)
    sub("\\]$", "", tag)
    return tag
}

function flush() {
    if (pending != "") {
        print pending
        fflush()
    }
    pending = ""
}

BEGIN { prefix = (label == "") ? "" : "[" label "] " }

total == "" && /max_epochs=[0-9]+/ {
    match($0, "max_epochs=[0-9]+")
    total = substr($0, RSTART + 11, RLENGTH - 11)
}

/Epoch\(train\) *\[[0-9]+\]/ {
    epoch = epoch_of($0, "train")
    if (epoch != pending_epoch)
        flush()
    pending_epoch = epoch
    pending = sprintf("%sepoch %s/%s  loss %s  eta %s", prefix, epoch,
                      (total == "") ? "?" : total, field($0, "loss"), field($0, "eta"))
    next
}

/Epoch\(val\) *\[[0-9]+\]/ {
    flush()
    metrics = $0
    sub("^.*Epoch\\(val\\) *\\[[0-9]+\\]\\[[ 0-9]+/[0-9]+\\] *", "", metrics)
    sub(" *data_time:.*$", "", metrics)
    gsub("  +", "  ", metrics)
    printf "%sval after epoch %s: %s\n", prefix, epoch_of($0, "val"), metrics
    fflush()
}

END { flush() }
