# bash completion for migratectl(1)                          -*- shell-script -*-
# SPDX-License-Identifier: MIT

# The instances that have a configuration: /etc/migrated/NAME.conf (example.conf is a template).
_migratectl_instances()
{
    local f names=()
    for f in /etc/migrated/*.conf; do
        [[ -e $f ]] || continue
        f=${f##*/}
        f=${f%.conf}
        [[ $f == example ]] || names+=("$f")
    done
    printf '%s\n' "${names[@]}"
}

# The backups the daemon lists, by file name (what restore takes). Asks the daemon, briefly.
_migratectl_backups()
{
    local -a cmd=("$1" "${@:2}" --json backups)
    if type -P timeout &>/dev/null; then
        cmd=(timeout 2 "${cmd[@]}")
    fi
    "${cmd[@]}" 2>/dev/null | grep -o '"file": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'
}

_migratectl()
{
    local cur prev words cword
    _init_completion || return

    local commands="status up down plan history verify wait cancel backup backups restore mark
        baseline lock-check new"
    local global_opts="--socket --instance --json --help --version"

    # The command is the first word that is neither a global option nor its argument.
    local i command= command_index=0
    local -a conn=()
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --socket | --instance)
                conn+=("${words[i]}" "${words[i + 1]}")
                ((i++))
                ;;
            --socket=* | --instance=*)
                conn+=("${words[i]}")
                ;;
            -*) ;;
            *)
                command=${words[i]}
                command_index=$i
                break
                ;;
        esac
    done

    if [[ -z $command ]]; then
        case $prev in
            --socket)
                _filedir
                return
                ;;
            --instance)
                COMPREPLY=($(compgen -W "$(_migratectl_instances)" -- "$cur"))
                return
                ;;
        esac
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$global_opts" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    # Options that take a value the shell cannot guess: complete nothing.
    case $prev in
        --to | --steps | --limit | --timeout)
            return
            ;;
        --migrations)
            _filedir -d
            return
            ;;
        --database)
            _filedir
            return
            ;;
    esac

    local opts="--json --help" args=
    local n_args=$((cword - command_index - 1))
    case $command in
        status) opts+=" --check" ;;
        up) opts+=" --to --dry-run --rehearse --per-migration --allow-out-of-order" ;;
        down) opts+=" --steps --to --dry-run" ;;
        plan)
            opts+=" --to --steps"
            ((n_args == 0)) && args="up down"
            ;;
        history) opts+=" --limit" ;;
        wait) opts+=" --timeout" ;;
        mark)
            ((n_args == 0)) && args="applied rolled-back"
            ;;
        new) opts+=" --migrations" ;;
        lock-check) opts+=" --database" ;;
        restore)
            if [[ $cur != -* ]] && ((n_args == 0)); then
                COMPREPLY=($(compgen -W "$(_migratectl_backups "${words[0]}" "${conn[@]}")" -- "$cur"))
                return
            fi
            ;;
        verify | cancel | backup | backups | baseline) ;;
        *) return ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [[ -n $args ]]; then
        COMPREPLY=($(compgen -W "$args" -- "$cur"))
    fi
} &&
    complete -F _migratectl migratectl

# ex: filetype=sh
