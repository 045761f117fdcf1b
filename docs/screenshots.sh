#!/usr/bin/env bash
# Takes the screenshots of the staff pages shown in README.md ("Staff pages"): starts crm-server on
# a throw-away data directory, fills it with sample customers through the API, and has
# headless Chromium photograph each page.
#
#   cargo build -p crm-server && bash docs/screenshots.sh [path/to/crm-server]
#
# Needs curl, chromium (Debian: apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-target/debug/crm-server}
out=docs
data=$(mktemp -d)
profile=$(mktemp -d)
work=$(mktemp -d)
log=$(mktemp)

"$server" --addr 127.0.0.1:0 --data "$data" >"$log" 2>/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data" "$profile" "$work" "$log"' EXIT
for _ in $(seq 50); do grep -q http:// "$log" && break; sleep 0.1; done
base=$(grep -o 'http://[0-9.:]*' "$log")

create() { curl -fsS -X POST "$base/api/create_customer" -d "$1" | sed 's/.*"idClient":"\([^"]*\)".*/\1/'; }
first=$(create '{"Nom":"Bloggs","Prenom":"Jacquie","email":"jacquie.bloggs@mimi.com","phone":"+33 6 12 34 56 78","Credit":420,"Compte":"BKN1CST53","CarteFid":33}')
create '{"name":"Jon","last_name":"Doe","sexe":"h","age":23,"mail":"jon.doe@mail.com","phone":"+33638614907"}' >/dev/null
# Long values, to show that the table still fits a 1280 px window.
create '{"Nom":"de La Rochefoucauld-Montmorency","Prenom":"Marie-Christine-Éléonore","email":"marie-christine.delarochefoucauld@entreprise-exemple.fr","phone":"+33 (0)1 23 45 67 89 poste 1234","Credit":123456,"Compte":"FR76300040","CarteFid":987654}' >/dev/null
i=0
for name in "Martin Élise" "Bernard Lucas" "Dubois Chloé" "Thomas Hugo" "Robert Léa" "Richard Louis" \
  "Petit Manon" "Durand Jules" "Leroy Camille" "Moreau Arthur" "Simon Inès" "Laurent Gabriel"; do
  i=$((i + 1))
  nom=${name%% *}; prenom=${name#* }
  create "{\"Nom\":\"$nom\",\"Prenom\":\"$prenom\",\"email\":\"$(echo "$prenom.$nom" | iconv -f utf-8 -t ascii//TRANSLIT | tr 'A-Z' 'a-z')@exemple.fr\",\"phone\":\"06 $((10 + i)) 2$i 3$i 4$i\",\"Credit\":$((i * 1234 % 9000)),\"Compte\":\"FR76-00$i\",\"CarteFid\":$((100 + i))}" >/dev/null
done

# The first customer's tickets, a credit and (through the page's credit form) a
# scheduled payment, for its page.
curl -fsS -X POST "$base/api/v1/tickets" -d "{\"origin\":\"magasin\",\"tickets\":[
  {\"id\":4101,\"date\":\"2026-09-14T10:12:00Z\",\"prix\":4240,\"client\":\"$first\",\"modePaiement\":\"CARD\",
   \"articles\":[{\"codeProduit\":\"X1-0\",\"prixAvant\":800,\"prixApres\":400,\"promo\":50,\"quantity\":2},
                 {\"codeProduit\":\"X1-9\",\"prixAvant\":3440,\"prixApres\":3440,\"promo\":0,\"quantity\":1}]},
  {\"id\":4388,\"date\":\"2026-10-21T17:45:00Z\",\"prix\":12990,\"client\":\"$first\",\"modePaiement\":\"CASH\",
   \"articles\":[{\"codeProduit\":\"B7-2\",\"prixAvant\":12990,\"prixApres\":12990,\"promo\":0,\"quantity\":1}]}]}" >/dev/null
curl -fsS -X POST "$base/api/credit" -d '{"Tickets":[{"carteFid":33,"Montant":2600}]}' >/dev/null
customer_page=$(curl -fsS -o /dev/null -w '%{redirect_url}' --data-urlencode 'Montant=360,00' \
  --data-urlencode 'Date=2026-12-06' "$base/api/customers/$first/credit")
customer_page=${customer_page#"$base"}

# What the new customer form answers to invalid fields (a 422 page, saved to a file
# whose links point at the server, since a screenshot cannot post).
errors="$work/errors.html"
curl -sS -o "$errors" --data-urlencode 'Nom=' --data-urlencode 'Prenom=Jon' --data-urlencode 'Email=jon.doe@mail' \
  --data-urlencode 'Age=230' --data-urlencode 'Sexe=h' "$base/api/customers"
sed -i "s#href=\"/#href=\"$base/#g" "$errors"

# An import through the form's route, for the banner it leaves on the table.
csv="$work/import.csv"
printf 'Nom,Prenom,Email\nGarcia,Nina,nina.garcia@exemple.fr\nRoux,Paul,paul.roux@exemple.fr\n' >"$csv"
after_import=$(curl -fsS -o /dev/null -w '%{redirect_url}' -F redirect=1 -F mode=merge \
  -F "file=@$csv;type=text/csv" "$base/api/update_db")
after_import=${after_import#"$base"}

shoot() { # file width height path-or-URL
  case $4 in /*) url=$base$4 ;; *) url=$4 ;; esac
  chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --no-first-run --hide-scrollbars --user-data-dir="$profile" --window-size="$2,$3" \
    --screenshot="$out/$1" "$url" 2>/dev/null
}
shoot pages-home.png 1280 800 "${after_import:-/api}"
shoot pages-import.png 1440 900 /api/update_db
shoot pages-customer.png 1440 1600 "${customer_page:-/api/customers/$first}"
shoot pages-customer-new.png 1280 1000 "file://$errors"
shoot pages-home-phone.png 390 844 "/api?sort=-Credit"
echo "screenshots written to $out/"
