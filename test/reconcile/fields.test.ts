import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileFieldMapping, recogniseKey, recogniseRecord } from '../../src/reconcile/engine/fields.js';

describe('key recognition', () => {
  const expectations: [string, string][] = [
    ['First Name', 'firstName'], ['first_name', 'firstName'], ['given_name', 'firstName'], ['firstName', 'firstName'],
    ['fname', 'firstName'], ['Last Name', 'lastName'], ['surname', 'lastName'], ['family_name', 'lastName'],
    ['DOB', 'dateOfBirth'], ['date_of_birth', 'dateOfBirth'], ['birthdate', 'dateOfBirth'],
    ['Birth Date (MM/DD/YYYY)', 'dateOfBirth'], ['Email Address', 'email'], ['E-mail', 'email'],
    ['Mobile', 'phone'], ['Phone', 'phone'], ['cell', 'phone'], ['Client Mobile #', 'phone'],
    ['Zip', 'postalCode'], ['postcode', 'postalCode'], ['postal_code', 'postalCode'],
    ['suburb', 'city'], ['City', 'city'], ['town', 'city'], ['state', 'state'], ['Province', 'state'],
    ['address_1', 'addressLine1'], ['address_2', 'addressLine2'], ['street', 'addressLine1'],
    ['street_number', 'streetNumber'], ['Member ID', 'memberId'], ['Allē ID', 'memberId'],
    ['Maiden Name', 'otherLastName'], ['Redemption Date', 'serviceDate'], ['Product', 'service'], ['Reward Amount', 'amount'],
  ];
  for (const [key, field] of expectations) {
    it(`"${key}" is ${field}`, () => assert.equal(recogniseKey(key), field));
  }
  it('reads "#" as "number": Member # and Customer # are ids, Phone # and Cell # are phones', () => {
    assert.equal(recogniseKey('Member #'), 'memberId');
    assert.equal(recogniseKey('Customer #'), 'memberId');
    assert.equal(recogniseKey('Account #'), 'memberId');
    assert.equal(recogniseKey('Phone #'), 'phone');
    assert.equal(recogniseKey('Cell #'), 'phone');
  });
  it('does not take a mailing address for an e-mail', () => {
    assert.equal(recogniseKey('Mailing Address 1'), 'addressLine1');
    assert.equal(recogniseKey('Mailing Address Line 2'), 'addressLine2');
    assert.equal(recogniseKey('Member Email'), 'email');
  });
  it('knows whole-name columns and abbreviated spellings', () => {
    for (const [key, field] of [['Name (Last, First)', 'fullName'], ['Last Name, First Name', 'fullName'], ['Client Full Name', 'fullName'],
      ['Cust Name', 'fullName'], ['Pt Name', 'fullName'], ['Customer First', 'firstName'], ['Mbr Last Nm', 'lastName'],
      ['Addr Line 1', 'addressLine1'], ['Home Ph', 'phone'], ['Aspire Rewards ID', 'memberId']] as const) {
      assert.equal(recogniseKey(key), field, key);
    }
    assert.equal(recogniseKey('Last Visit'), null);
    assert.equal(recogniseKey('Customer Since'), null);
  });
  it('ignores keys it does not know', () => {
    assert.equal(recogniseKey('favourite colour'), null);
  });
});

describe('record recognition', () => {
  it('reads a flat export row', () => {
    const record = recogniseRecord({ 'First Name': 'Liz', 'Last Name': 'Quill', 'Email Address': 'liz@example.com', Mobile: '555 201 3040', Phone: '555 201 9999' });
    assert.equal(record?.firstName, 'Liz');
    assert.equal(record?.lastName, 'Quill');
    assert.deepEqual(record?.emails, ['liz@example.com']);
    assert.deepEqual(record?.phones, ['555 201 3040', '555 201 9999']);
  });
  it('reads nested objects, numbers and id containers', () => {
    const record = recogniseRecord({ patient: { firstName: 'Ann' }, address: { line1: '1 Oak St', postalCode: 85251 }, externalIds: { alle: 'A123' }, dob: 19840928 });
    assert.equal(record?.firstName, 'Ann');
    assert.equal(record?.addressLine1, '1 Oak St');
    assert.equal(record?.postalCode, '85251');
    assert.deepEqual(record?.memberIds, ['A123']);
    assert.equal(record?.dateOfBirth, '19840928');
  });
  it('lets an explicit fieldMapping win, including "ignore"', () => {
    const mapping = compileFieldMapping({ 'Col A': 'firstName', 'Col B': 'last_name', Phone: 'ignore' });
    const record = recogniseRecord({ 'Col A': 'Ann', 'Col B': 'Quill', Phone: '5552013040' }, mapping);
    assert.equal(record?.firstName, 'Ann');
    assert.equal(record?.lastName, 'Quill');
    assert.deepEqual(record?.phones, []);
  });
  it('returns null for non-objects', () => {
    assert.equal(recogniseRecord('Ann Quill'), null);
    assert.equal(recogniseRecord([1, 2]), null);
    assert.equal(recogniseRecord(null), null);
  });
});
