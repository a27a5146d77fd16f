# bash completion for qvisor(1).
# Verbs and their options come from the binary (`qvisor --json help`), VM,
# network and image names from the daemon the command line points at
# (--socket/--connect are honoured), so new verbs and names need no edit here.
# Needs nothing beyond bash (the bash-completion package is not required).

# Names of the items of `qvisor --json VERB...`'s array (top-level array
# items are printed at an indent of 4, their keys at 6).
_qvisor_names()
{
	"${_qvisor_cmd[@]}" --json "$@" 2>/dev/null |
		sed -n 's/^      "name": "\(.*\)",\{0,1\}$/\1/p'
}

_qvisor_verbs()
{
	"${_qvisor_cmd[0]}" --json help 2>/dev/null |
		sed -n 's/^      "name": "\(.*\)",\{0,1\}$/\1/p'
}

# The --options named in a verb's usage line.
_qvisor_verb_opts()
{
	"${_qvisor_cmd[0]}" --json help 2>/dev/null |
		awk -v verb="$1" '
			/^      "name": / { n = $0; sub(/^[^:]*: "/, "", n); sub(/",?$/, "", n) }
			/^      "(usage|summary)": / && n == verb { print }' |
		grep -o -- '--[a-z][a-z-]*' | sort -u
}

_qvisor_files()
{
	local IFS=$'\n'
	COMPREPLY=($(compgen -f -- "$cur"))
	compopt -o filenames 2>/dev/null
}

_qvisor()
{
	local cword=$COMP_CWORD cur=${COMP_WORDS[COMP_CWORD]} prev=
	local -a words=("${COMP_WORDS[@]}")
	((cword > 0)) && prev=${words[cword - 1]}

	local -a _qvisor_cmd=("${words[0]}")
	local i=1 verb="" w
	# Global options, kept for the calls to the daemon.
	while ((i < cword)); do
		w=${words[i]}
		case $w in
		-s | --socket | -c | --connect)
			_qvisor_cmd+=("$w" "${words[i + 1]}")
			((i += 2))
			continue
			;;
		--socket=* | --connect=*) _qvisor_cmd+=("$w") ;;
		-*) ;;
		*) break ;;
		esac
		((i++))
	done

	case $prev in
	-s | --socket)
		_qvisor_files
		return
		;;
	-c | --connect)
		COMPREPLY=($(compgen -W "unix:// ssh://" -- "$cur"))
		compopt -o nospace
		return
		;;
	esac

	if ((i >= cword)); then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--socket --connect --json --help --version" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$(_qvisor_verbs | cut -d' ' -f1 | sort -u)" -- "$cur"))
		fi
		return
	fi

	# One- or two-word verb ("host check", "net info", "image clone").
	verb=${words[i]}
	if ((i + 1 < cword)) && _qvisor_verbs | grep -qx -- "$verb ${words[i + 1]}"; then
		verb="$verb ${words[i + 1]}"
		((i++))
	elif ((i + 1 == cword)) && ! _qvisor_verbs | grep -qx -- "$verb"; then
		COMPREPLY=($(compgen -W "$(_qvisor_verbs | sed -n "s/^$verb //p")" -- "$cur"))
		return
	fi
	local argn=$((cword - i)) # 1 = first argument after the verb

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(_qvisor_verb_opts "$verb")" -- "$cur"))
		return
	fi
	case $prev in
	--vm) COMPREPLY=($(compgen -W "$(_qvisor_names list --all)" -- "$cur")); return ;;
	--network) COMPREPLY=($(compgen -W "$(_qvisor_names net list)" -- "$cur")); return ;;
	--format) COMPREPLY=($(compgen -W "raw qcow2" -- "$cur")); return ;;
	--report) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--trace | --csv | --svg) _qvisor_files; return ;;
	--policy) COMPREPLY=($(compgen -W "npa dvfs qvisor thr-mmt iqr-mmt mad-mmt lr-mmt lrr-mmt thr-rs thr-mc thr-mu" -- "$cur")); return ;;
	-o | --output) COMPREPLY=($(compgen -W "wide name" -- "$cur")); return ;;
	--bridge | --mac | --timeout | --interval | --count | --to | --bandwidth | \
		--max-downtime | --deadline | --dest-address | --listen | --cpu | --memory-*)
		return ;;
	esac

	case $verb in
	undefine | info | start | stop | reboot | pause | resume | balloon | top | migrate-cancel | migrate-status | dump-libvirt)
		COMPREPLY=($(compgen -W "$(_qvisor_names list --all)" -- "$cur")) ;;
	limits | console | nic-add | nic-remove | migrate)
		((argn == 1)) && COMPREPLY=($(compgen -W "$(_qvisor_names list --all)" -- "$cur")) ;;
	"net undefine" | "net info")
		COMPREPLY=($(compgen -W "$(_qvisor_names net list)" -- "$cur")) ;;
	"image delete" | "image resize" | "image clone" | "image rekey")
		((argn == 1)) && COMPREPLY=($(compgen -W "$(_qvisor_names image list)" -- "$cur")) ;;
	"image import" | "image import-foreign" | "image import-ova")
		((argn == 1)) && _qvisor_files ;;
	define | "net define" | "drill run")
		((argn == 1)) && _qvisor_files ;;
	"fw show" | "fw set")
		((argn == 1)) && COMPREPLY=($(compgen -W "$(_qvisor_names list --all)" -- "$cur")) ;;
	"fw group")
		((argn == 1)) && COMPREPLY=($(compgen -W "define undefine list show" -- "$cur")) ;;
	help)
		COMPREPLY=($(compgen -W "$(_qvisor_verbs | cut -d' ' -f1 | sort -u)" -- "$cur")) ;;
	"snapshot create" | "snapshot list" | "snapshot revert" | "snapshot delete")
		((argn == 1)) && COMPREPLY=($(compgen -W "$(_qvisor_names list --all)" -- "$cur")) ;;
	esac
}
complete -F _qvisor qvisor
